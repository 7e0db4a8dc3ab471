"""Datasets' metadata without OpenMMLab: OV splits, FG-OVD files, the synthetic world."""
