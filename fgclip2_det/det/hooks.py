"""Give an open-vocabulary model the class names of the dataset it is run on.

The vocabulary of a box-classification benchmark is defined by its annotation file (COCO's 80
categories in id order, LVIS's 1203, BoxClass-CN's 566), which the dataset reads; the model cannot
see the dataset, so this hook hands ``dataset.metainfo['classes']`` and ``['novel_classes']`` to
``model.set_vocabulary`` (the same call for every model: :mod:`fgclip2_det.openvocab.contract`)
before training, validation and testing. A model built with explicit ``classes=`` keeps them, but
they must equal the dataset's (labels are indices into the dataset's classes).
"""
from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmdet.registry import HOOKS


@HOOKS.register_module()
class DatasetVocabularyHook(Hook):
    priority = "VERY_HIGH"

    def before_train(self, runner) -> None:
        self._apply(runner, runner.train_dataloader.dataset)

    def before_val(self, runner) -> None:
        self._apply(runner, runner.val_dataloader.dataset)

    def before_test(self, runner) -> None:
        self._apply(runner, runner.test_dataloader.dataset)

    @staticmethod
    def _apply(runner, dataset) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        classes = dataset.metainfo.get("classes")
        if not classes:
            raise ValueError(f"{type(dataset).__name__} has no metainfo['classes'] to use as vocabulary")
        classes = [c if isinstance(c, str) else list(c) for c in classes]
        if model.classes is None:
            model.set_vocabulary_from_meta(dict(dataset.metainfo), type(dataset).__name__)
            runner.logger.info(f"vocabulary: {len(classes)} classes from {type(dataset).__name__}")
        elif model.classes != classes:
            raise ValueError(f"the model's classes ({len(model.classes)}) differ from the dataset's "
                             f"({len(classes)}); drop model.classes to use the dataset's")
