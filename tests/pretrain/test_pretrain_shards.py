"""Indexed tar shards (fgclip2_det/pretrain/shards.py): round trip against the JSON dataset,
WebDataset conventions, bad samples inside shards, rank/worker splitting without duplicates, the
converter's errors, and a pickled size that does not grow with the data."""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.dataset import DefaultSampler
from PIL import Image
from torch.utils.data import DataLoader

from fgclip2_det.datasets.synthetic import generate_world
from fgclip2_det.pretrain import FineHARDDataset, FineHARDShardDataset, GlobalLanguageBatchSampler
from fgclip2_det.pretrain.annotations import AnnotationError
from fgclip2_det.pretrain.dataset import next_same_language
from fgclip2_det.pretrain.shards import sample_key, write_shards

ROOT = Path(__file__).resolve().parents[2]
PER_SHARD = 4  # several shards per language even for a 20-image world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return generate_world(tmp_path_factory.mktemp("shard-world"), 20, seed=1, workers=1)


@pytest.fixture(scope="module")
def shards(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    summary = write_shards("pretrain/en.json", "", out, zh_ann_file="pretrain/zh.json", zh_image_root="",
                           data_root=str(world), samples_per_shard=PER_SHARD)
    return out, summary


def json_dataset(world, **kw):
    return FineHARDDataset("pretrain/en.json", data_root=str(world), zh_ann_file="pretrain/zh.json", **kw)


def copy_shards(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def tiny_set(folder: Path, n: int, zh: int = 0, missing: tuple[int, ...] = ()) -> Path:
    """``n`` English + ``zh`` Chinese items over two small PNGs; ``missing`` English items point at
    an image that does not exist."""
    images = folder / "images"
    images.mkdir(parents=True)
    for k, colour in enumerate(((200, 30, 30), (30, 30, 200))):
        Image.new("RGB", (24, 16), colour).save(images / f"im{k}.png")

    def item(i, lang):
        image = "nope.png" if lang == "en" and i in missing else f"im{i % 2}.png"
        region = {"bbox": [0.1, 0.2, 0.5, 0.9], "short_expr": f"{lang} thing {i}", "long_expr": f"{lang} long {i}",
                  "flag_short_neg": 1, "short_expr_negs": {str(k): f"{lang} not {i} {k}" for k in range(10)}}
        out = {"f_path": image, "caption": f"{lang} caption {i}", "short_caption": f"{lang} short {i}",
               "bbox_info": [region]}
        return {**out, "is_cn": True} if lang == "zh" else out

    (folder / "en.json").write_text(json.dumps([item(i, "en") for i in range(n)]))
    (folder / "zh.json").write_text(json.dumps([item(i, "zh") for i in range(zh)]))
    return folder


# ------------------------------------------------------------------------------------ round trip
def test_round_trip_equals_json_dataset(world, shards):
    out, summary = shards
    ref = json_dataset(world, region_caption="short")
    ds = FineHARDShardDataset(out, region_caption="short")
    n_en, n_zh = int((ref.language_ids == 0).sum()), int((ref.language_ids == 1).sum())
    assert n_en and n_zh
    assert summary["samples"] == len(ds) == len(ref) and summary["skipped"] == 0
    assert summary["counts"] == {"en": n_en, "zh": n_zh}
    assert summary["shards"] == -(-n_en // PER_SHARD) + -(-n_zh // PER_SHARD)
    assert isinstance(ds.language_ids, np.memmap) and isinstance(ds.index, np.memmap)
    np.testing.assert_array_equal(ds.language_ids, ref.language_ids)
    assert ref[0]["regions"] and ref[0]["hard"] and ref[len(ref) - 1]["hard"]  # the comparison covers them
    for i in range(len(ref)):
        a, b = ds[i], ref[i]
        assert a.keys() == b.keys()
        np.testing.assert_array_equal(a["image"], b["image"])
        for key in ("long", "short", "regions", "hard", "hard_dropped", "replaced"):
            assert a[key] == b[key], (i, key)
        assert ds.record(i) == ref.record(i)  # Sample: f_path, captions, language, boxes, negatives
    # the default random region captions, drawn from the sampler's (index, seed, epoch) key: the same in both
    ref_random, ds_random = json_dataset(world), FineHARDShardDataset(out)
    for i in range(len(ref)):
        assert ds_random[(i, 0, 3)]["regions"] == ref_random[(i, 0, 3)]["regions"]


def test_tar_files_follow_webdataset_conventions(world, shards):
    out, _ = shards
    meta = json.loads((out / "index.json").read_text())
    index, langs = np.load(out / "index.npy"), np.load(out / "language_ids.npy")
    assert index.dtype == np.int64 and langs.dtype == np.uint8 and index.shape == (len(langs), 5)
    assert meta["version"] == 1 and meta["counts"] == {"en": int((langs == 0).sum()), "zh": int((langs == 1).sum())}
    assert [Path(s).name for s in meta["sources"]["en"]] == ["en.json"]
    assert sorted(p.name for p in (out / "shards").iterdir()) == sorted(meta["shards"])
    rows = []
    for shard_id, name in enumerate(meta["shards"]):
        assert re.fullmatch(r"(en|zh)-\d{6}\.tar", name)
        lang = {"en": 0, "zh": 1}[name[:2]]
        with tarfile.open(out / "shards" / name, "r|") as tar:  # streaming, as WebDataset reads
            members = [(m.name, tar.extractfile(m).read()) for m in tar]
        assert len(members) % 2 == 0 and 0 < len(members) // 2 <= PER_SHARD
        for (json_name, json_bytes), (image_name, image_bytes) in zip(members[::2], members[1::2]):
            key = json_name.split(".", 1)[0]
            assert json_name == f"{key}.json" and image_name == f"{key}.jpg"  # grouped by key, original extension
            item = json.loads(json_bytes)
            assert ("is_cn" in item) == (lang == 1)
            assert image_bytes == (world / item["f_path"]).read_bytes()  # original bytes
            row = int(key)
            assert langs[row] == lang and index[row, 0] == shard_id and index[row, 2] == len(json_bytes)
            rows.append(row)
        with tarfile.open(out / "shards" / name, "r") as tar:  # the index points at the members' data
            for m in tar.getmembers():
                row, col = int(m.name.split(".")[0]), 1 if m.name.endswith(".json") else 3
                assert (index[row, col], index[row, col + 1]) == (m.offset_data, m.size)
    assert sorted(rows) == list(range(len(langs)))


# ------------------------------------------------------------------------------------ bad samples
@pytest.mark.parametrize("what, patch, match", [
    ("image", lambda n: b"\0" * n, "cannot identify image"),
    ("json", lambda n: b"{" + b" " * (n - 1), "not valid JSON"),
    ("record", lambda n: b'{"f_path":"x.jpg"}'.ljust(n), "'caption' must be a non-empty string"),
])
def test_bad_sample_in_shard_is_replaced_and_counted(shards, tmp_path, what, patch, match):
    src, _ = shards
    out = copy_shards(src, tmp_path / "shards")
    ref = FineHARDShardDataset(src, region_caption="short")
    bad = int(np.flatnonzero(ref.language_ids == 1)[1])  # a Chinese one, not at a shard start
    shard, json_offset, json_size, image_offset, image_size = (int(v) for v in ref.index[bad])
    offset, size = (image_offset, image_size) if what == "image" else (json_offset, json_size)
    with open(out / "shards" / ref.shards[shard], "r+b") as f:  # in place: the shard keeps its size
        f.seek(offset)
        f.write(patch(size))

    ds = FineHARDShardDataset(out, region_caption="short")
    sub = next_same_language(ds.language_ids, bad)
    assert sub != bad and ds.language_ids[sub] == 1
    item, expected = ds[bad], ref[sub]
    assert item["replaced"] == 1 and ds[sub]["replaced"] == 0
    assert item["long"] == expected["long"] and item["regions"] == expected["regions"]
    np.testing.assert_array_equal(item["image"], expected["image"])
    assert ds[bad - 1]["long"] == ref[bad - 1]["long"]  # the neighbours in the same shard are intact

    strict = FineHARDShardDataset(out, on_bad_sample="raise")
    where = re.escape(f"{ref.shards[shard]}:{sample_key(bad)}")
    with pytest.raises(ValueError, match=rf"bad sample {bad} \(.*{where}\).*{match}"):
        strict[bad]


def test_clear_errors_for_missing_index_and_mismatched_shards(shards, tmp_path):
    src, _ = shards
    with pytest.raises(FileNotFoundError, match=r"no index\.json, index\.npy, language_ids\.npy.*make_pretrain_shards"):
        FineHARDShardDataset(tmp_path / "empty")
    out = copy_shards(src, tmp_path / "missing")
    name = FineHARDShardDataset(out).shards[-1]
    (out / "shards" / name).unlink()
    with pytest.raises(FileNotFoundError, match=rf"1 of the \d+ shards .* missing \({re.escape(name)}\).*do not match"):
        FineHARDShardDataset(out)
    out = copy_shards(src, tmp_path / "truncated")
    with open(out / "shards" / name, "r+b") as f:
        f.truncate(1024)
    with pytest.raises(ValueError, match=rf"{re.escape(name)}: 1024 bytes, index\.json says \d+.*do not match"):
        FineHARDShardDataset(out)


# ------------------------------------------------------------------------------ ranks and workers
class TracingShardDataset(FineHARDShardDataset):
    """Reports which sample each process loaded and in which process its shard handle was opened."""

    def __getitem__(self, key):
        item = super().__getitem__(key)
        index = key[0] if isinstance(key, tuple) else key  # the sampler yields (index, seed, epoch)
        return {"index": index, "lang": int(self.language_ids[index]), "f_path": self.record(index).image,
                "pid": os.getpid(), "handles_pid": self._pid, "replaced": item["replaced"]}


def test_no_duplicates_across_ranks_and_workers(shards):
    out, _ = shards
    ds = TracingShardDataset(out)
    assert ds._files == {}  # nothing opened at build: the object travels to workers
    ds[0]
    assert ds._pid == os.getpid() and ds._files  # the parent holds handles now; workers must not reuse them
    per_rank, samplers = [], []
    for rank in (0, 1):
        sampler = GlobalLanguageBatchSampler(DefaultSampler(ds, shuffle=True, seed=0), batch_size=2, rank=rank,
                                             world_size=2)
        loader = DataLoader(ds, batch_sampler=sampler, num_workers=2, collate_fn=lambda b: b, timeout=120)
        batches = list(loader)
        assert len(batches) == len(sampler) >= 4 and all(len(b) == 2 for b in batches)  # all full
        pids = {it["pid"] for b in batches for it in b}
        assert len(pids) == 2 and os.getpid() not in pids  # two workers did the reading
        assert all(len({it["pid"] for it in b}) == 1 for b in batches)  # a worker gets whole batches
        assert all(it["handles_pid"] == it["pid"] and it["replaced"] == 0 for b in batches for it in b)
        per_rank.append(batches)
        samplers.append(sampler)
    for b0, b1 in zip(*per_rank):  # the same global batch: one language over both ranks
        assert len({it["lang"] for it in b0 + b1}) == 1
    loaded = [(it["lang"], it["f_path"]) for batches in per_rank for b in batches for it in b]
    assert len(loaded) == len(set(loaded)) == 4 * len(samplers[0])  # disjoint across ranks and workers
    indices = sorted(it["index"] for batches in per_rank for b in batches for it in b)
    assert indices == sorted(np.concatenate(samplers[0].global_batches(0)).tolist())


# ------------------------------------------------------------------------------------ converter
def test_converter_skips_missing_image(tmp_path):
    data = tiny_set(tmp_path / "data", 4, zh=2, missing=(1,))
    summary = write_shards("en.json", "images", tmp_path / "out", zh_ann_file="zh.json", data_root=str(data))
    assert summary["samples"] == 5 and summary["counts"] == {"en": 3, "zh": 2} and summary["skipped"] == 1
    skip = summary["skipped_images"]
    assert len(skip) == 1 and skip[0]["where"] == f"{data / 'en.json'} item 1"
    assert skip[0]["image"] == str(data / "images" / "nope.png") and "No such file" in skip[0]["error"]
    assert len((tmp_path / "out" / "skipped.tsv").read_text().splitlines()) == 1
    ds = FineHARDShardDataset(tmp_path / "out")
    assert [ds.record(i).long_caption for i in range(len(ds))] == [
        "en caption 0", "en caption 2", "en caption 3", "zh caption 0", "zh caption 1"]
    assert ds.language_ids.tolist() == [0, 0, 0, 1, 1] and ds.record(3).is_cn


def test_converter_raises_on_malformed_annotation(tmp_path):
    data = tiny_set(tmp_path / "data", 3)
    items = json.loads((data / "en.json").read_text())
    del items[2]["caption"]
    (data / "en.json").write_text(json.dumps(items))
    with pytest.raises(AnnotationError, match=r"en\.json item 2: 'caption' must be a non-empty string"):
        write_shards("en.json", "images", tmp_path / "out", data_root=str(data))
    assert not (tmp_path / "out" / "index.json").exists()  # no loadable index from a failed conversion
    items[2]["caption"] = "fine"
    items[1]["bbox_info"][0]["bbox"] = [0.5, 0.1, 0.2, 0.3]
    (data / "en.json").write_text(json.dumps(items))
    with pytest.raises(AnnotationError, match=r"en\.json item 1 region 0: 'bbox' must be normalised"):
        write_shards("en.json", "images", tmp_path / "out2", data_root=str(data))
    # stage-1 data: regions are not validated
    summary = write_shards("en.json", "images", tmp_path / "out3", data_root=str(data), with_regions=False)
    assert summary["samples"] == 3
    with pytest.raises(FileExistsError, match="already holds shards"):
        write_shards("en.json", "images", tmp_path / "out3", data_root=str(data), with_regions=False)


def test_cli_prints_summary(tmp_path):
    data = tiny_set(tmp_path / "data", 3, zh=2)
    proc = subprocess.run([sys.executable, "tools/make_pretrain_shards.py", str(tmp_path / "out"), "--data-root",
                           str(data), "--ann-file", "en.json", "--image-root", "images", "--zh-ann-file", "zh.json",
                           "--samples-per-shard", "2"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["samples"] == 5 and summary["shards"] == 3 and summary["skipped"] == 0
    assert sorted(p.name for p in (tmp_path / "out" / "shards").iterdir()) == ["en-000000.tar", "en-000001.tar",
                                                                               "zh-000000.tar"]


# ------------------------------------------------------------------------------------ memory
def test_pickles_small_whatever_the_size(tmp_path):
    sizes = {}
    for n in (20, 200):
        data = tiny_set(tmp_path / f"data{n:04d}", n // 2, zh=n // 2)
        out = tmp_path / f"out{n:04d}"
        write_shards("en.json", "images", out, zh_ann_file="zh.json", data_root=str(data), samples_per_shard=10)
        ds = FineHARDShardDataset(out, region_caption="short")
        last = ds[n - 1]
        blob = pickle.dumps(ds)
        sizes[n] = len(blob)
        clone = pickle.loads(blob)
        assert len(clone) == n and len(clone.shards) == n // 10 and isinstance(clone.index, np.memmap)
        np.testing.assert_array_equal(clone.language_ids, ds.language_ids)
        assert clone[n - 1]["long"] == last["long"] == f"zh caption {n // 2 - 1}"
    assert sizes[20] == sizes[200] < 2000, sizes


# ------------------------------------------------------------------------------------ config
def test_shards_config_builds_the_dataset(shards):
    from mmdet.registry import DATASETS

    out, summary = shards
    cfg = Config.fromfile(ROOT / "configs/pretrain/fgclip2-stage2_fgclip2-tiny_synthetic-shards.py")
    spec = cfg.train_dataloader.dataset
    assert spec.type == "FineHARDShardDataset" and "ann_file" not in spec and spec.num_negatives == 10
    assert cfg.train_dataloader.batch_sampler.type == "GlobalLanguageBatchSampler"
    ds = DATASETS.build(dict(spec, shard_root=str(out)))
    assert isinstance(ds, FineHARDShardDataset) and len(ds) == summary["samples"] and ds.max_regions == 4
