"""The public inference API (MMDetection's ``mmdet.apis`` shape) and the launcher set-up of the tools.

* :mod:`.inference`: ``init_model(config, weights, device)`` and ``inference_model(model, images,
  vocabulary, boxes=None, batch_size=1)`` for the detector, the segmentor, the box classifier (and
  any MMDetection detector) over images, lists or folders -> ``DetDataSample``s;
* :mod:`.zero_shot`: FG-CLIP 2 alone, training-free (box classification, similarity maps,
  segmentation, detection);
* :mod:`.inputs`: typed vocabularies (EN/ZH names, ``|`` for synonyms), typed boxes, image files and
  folders, checkpoint folders; every bad input is one :class:`InputError`;
* :mod:`.launch`: ``--launcher`` handling shared by ``tools/train.py`` and ``tools/test.py``.

``tools/demo.py`` and the web demo (``fgclip2_det.apps``) are built on it.
"""
from .inference import build_test_pipeline, inference_model, init_model, use_vocabulary
from .inputs import (IMAGE_EXTENSIONS, MAX_BOXES, MAX_CLASSES, InputError, as_vocabulary, check_checkpoint,
                     list_images, parse_boxes, parse_vocabulary, read_image)
from .launch import add_launcher_args, load_config, setup_launcher
from .zero_shot import DenseFeatures, ZeroShotPredictor

__all__ = ["build_test_pipeline", "inference_model", "init_model", "use_vocabulary", "IMAGE_EXTENSIONS",
           "MAX_BOXES", "MAX_CLASSES", "InputError", "as_vocabulary", "check_checkpoint", "list_images",
           "parse_boxes", "parse_vocabulary", "read_image", "add_launcher_args", "load_config", "setup_launcher",
           "DenseFeatures", "ZeroShotPredictor"]
