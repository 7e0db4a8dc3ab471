# Prompt templates for the synthetic world, in the form of its captions: "a small striped red {}" for
# every size, pattern and colour (144 templates, averaged per class like the 80 photo templates).
# The 80 templates describe photos ("a bad photo of a {}."); the tiny FG-CLIP 2 trained on the
# synthetic captions has never read those words, so its text tower places "a photo of a star" far
# from anything it has learnt. Measured on the 10k tiny model (README, "Learning evidence"): BoxClass
# over the 14 kinds 0.110 with the 80 templates, 0.155 with these. A test keeps them equal to the
# world's vocabulary (fgclip2_det/datasets/synthetic/vocab.py).
synthetic_templates_en = [
    f'a {s} {p} {c} {{}}'
    for s in ('small', 'medium', 'large')
    for p in ('solid', 'striped', 'dotted', 'checkered')
    for c in ('red', 'green', 'blue', 'yellow', 'orange', 'purple', 'pink', 'white', 'black', 'brown', 'cyan', 'gray')]
