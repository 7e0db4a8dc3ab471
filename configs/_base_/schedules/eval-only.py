# Evaluation protocols without training (box classification, FG-OVD): the validation and test loops.
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
