# Training-free baseline on the synthetic world: softmax(100 * cos(dense feature, class text)) per
# patch, upsampled; pixels whose best probability is below 0.5 go to 'background' (index 0).
#   python tools/test.py configs/ovseg/training-free_fgclip2-tiny_synthetic.py
_base_ = ['./cost-decoder_fgclip2-tiny_synthetic.py']

model = dict(decoder=None, background_threshold=0.5, background_index=0)
