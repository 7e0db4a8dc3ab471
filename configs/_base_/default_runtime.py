# Runtime shared by every fgclip2_det config: the content of mmdet's _base_/default_runtime.py,
# written out because `_base_ = 'mmdet::...'` needs pkg_resources, which setuptools >= 81 no longer
# ships (mmengine 0.10.7 `is_installed`), plus our registrations.
default_scope = 'mmdet'
custom_imports = dict(
    imports=['fgclip2_det.det', 'fgclip2_det.seg', 'fgclip2_det.pretrain', 'fgclip2_det.evaluation'],
    allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False
