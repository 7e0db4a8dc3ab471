#!/usr/bin/env python
"""Interactive web demo: upload an image, type an English/Chinese vocabulary, see boxes, masks and heat maps.

    python tools/serve_demo.py [--checkpoint DIR] [--detector CONFIG WEIGHTS] [--segmentor CONFIG WEIGHTS]
                               [--demo work_dirs/demo] [--host 127.0.0.1] [--port 7860] [--request-timeout 120]
                               [--text-attention-mask auto|on|off]

A Gradio app bound to the loopback interface by default. Tabs:

* **Detection**: image + comma-separated vocabulary -> labelled boxes and scores. With
  ``--detector`` (an ``FGCLIP2FViT`` config + weights) the trained detector, on the typed vocabulary;
  without it, FG-CLIP 2 alone, training-free (``fgclip2_det/apis/zero_shot.py``).
* **Heat map**: cosine of every dense feature with a free-text query.
* **Segmentation**: image + vocabulary -> a coloured mask with its legend (``--segmentor`` config +
  weights, else FG-CLIP 2's training-free per-patch classification).
* **Box classification**: image + boxes (one ``x1, y1, x2, y2`` per line) -> top-5 per box.

Without ``--checkpoint`` it serves what ``make demo`` trained (``--demo`` folder, default
``work_dirs/demo``, read from its ``serve.json``): the demo's tiny FG-CLIP 2, detector and segmentor,
the synthetic world's vocabulary prefilled and a few held-out world images offered as examples.
With no demo run either, it generates the tiny random FG-CLIP 2 (``work_dirs/serve_demo/``) and the
page says so and how to get the trained one: the plumbing works, the predictions mean nothing. Bad
input (no image, a
file that is not an image, an image over 16.8 MP, an empty vocabulary, a malformed box) gets a
message in the page; every request is bounded by ``--request-timeout``.
"""
from __future__ import annotations

import argparse
import contextvars
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a closed network

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import gradio as gr  # noqa: E402

from fgclip2_det.apis import InputError, parse_boxes, parse_vocabulary  # noqa: E402
from fgclip2_det.apps.engine import DemoEngine, load_upload  # noqa: E402
from fgclip2_det.model.tokenizer import ATTENTION_MASK_CHOICES  # noqa: E402
from fgclip2_det.openvocab import class_names  # noqa: E402

LOG = logging.getLogger("serve_demo")
DEFAULT_VOCAB = "person, dog, cat, car, bicycle, bottle, chair, 人, 狗, 猫, 汽车"
TINY_CHECKPOINT = REPO / "work_dirs" / "serve_demo" / "tiny-fgclip2"
PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c", "#fabebe",
           "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3", "#808000", "#ffd8b1", "#000075"]


def image_input(elem_id: str) -> gr.Image:
    """``gr.Image`` whose unreadable uploads still reach the handler, as their path: ``load_upload``
    then says what is wrong in the page instead of Gradio's preprocessing error. Patched on the
    instance: a ``gr.Image`` subclass would make Gradio write a ``.pyi`` stub next to this file."""
    image = gr.Image(type="filepath", label="Image", elem_id=elem_id)
    strict = image.preprocess

    def preprocess(payload):
        try:
            return strict(payload)
        except Exception:  # noqa: BLE001  not an image, too large to decode, ...
            return getattr(payload, "path", None)

    image.preprocess = preprocess
    return image


def vocabulary_box(elem_id: str, value: str = DEFAULT_VOCAB) -> gr.Textbox:
    return gr.Textbox(value, label="Vocabulary (comma-separated, English or Chinese; dog | 狗: one class)",
                      elem_id=elem_id)


def colour_map(names: list[str]) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


class Guard:
    """Runs one request's work on the worker thread with a time bound; turns failures into page messages."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fgclip2-demo")

    def __call__(self, work):
        future = self.pool.submit(contextvars.copy_context().run, work)  # keeps gr.Progress working
        try:
            return future.result(timeout=self.timeout)
        except FutureTimeout:
            raise gr.Error(f"The request took longer than {self.timeout:.0f} s and was abandoned: "
                           "try a smaller image or a shorter vocabulary.") from None
        except InputError as err:
            raise gr.Error(str(err)) from None
        except Exception as err:  # noqa: BLE001  a page message, the traceback in the server log
            LOG.exception("request failed")
            raise gr.Error(f"The demo failed on this request ({type(err).__name__}: {err}). "
                           "The server log has the details.") from None


def build_app(engine: DemoEngine, notice: str | None, timeout: float = 120.0, model_note: str | None = None,
              vocabulary: str = DEFAULT_VOCAB, examples: list[str] = ()) -> gr.Blocks:
    """The page. ``model_note``: what the models are (shown in the header); ``vocabulary``: the
    prefilled one; ``examples``: image paths offered under the Detection and Segmentation inputs."""
    guard = Guard(timeout)
    det_source = "trained detector" if engine.detector is not None else "FG-CLIP 2 alone, training-free"
    seg_source = "trained segmentor" if engine.segmentor is not None else "FG-CLIP 2 alone, training-free"

    def detect(path, vocab_text, threshold, progress=gr.Progress()):
        def work():
            progress(0.1, desc="reading the image")
            image, vocab = load_upload(path), parse_vocabulary(vocab_text)
            progress(0.3, desc=f"embedding {len(vocab)} class names")
            engine.embeddings(vocab)
            progress(0.6, desc="detecting")
            found = engine.detect(image, vocab, float(threshold))
            colours = colour_map(class_names(vocab))
            boxes = [(tuple(round(v) for v in d.box), d.label) for d in found]
            rows = [[d.label, round(d.score, 3), *(round(v) for v in d.box)] for d in found]
            status = (f"{len(found)} boxes scoring ≥ {threshold:.2f} over {len(vocab)} classes ({det_source}): "
                      + ", ".join(f"{d.label} {d.score:.2f}" for d in found[:20]))
            return gr.AnnotatedImage(value=(image, boxes), color_map=colours), rows, status
        return guard(work)

    def heatmap(path, query, progress=gr.Progress()):
        def work():
            progress(0.2, desc="reading the image")
            image = load_upload(path)
            progress(0.5, desc="dense features")
            overlay, lo, hi = engine.heatmap(image, query)
            return overlay, f"cosine with “{query.strip()}”: {lo:+.3f} (blue) … {hi:+.3f} (red)"
        return guard(work)

    def segment(path, vocab_text, progress=gr.Progress()):
        def work():
            progress(0.1, desc="reading the image")
            image, vocab = load_upload(path), parse_vocabulary(vocab_text)
            progress(0.3, desc=f"embedding {len(vocab)} class names")
            engine.embeddings(vocab)
            progress(0.6, desc="segmenting")
            labels = engine.segment(image, vocab)
            present = [(i, name) for i, name in enumerate(class_names(vocab)) if (labels == i).any()]
            masks = [((labels == i).astype(float), name) for i, name in present]
            shares = ", ".join(f"{name} {100 * (labels == i).mean():.0f}%" for i, name in present)
            status = f"{len(present)} of {len(vocab)} classes present ({seg_source}): {shares}"
            return gr.AnnotatedImage(value=(image, masks), color_map=colour_map(class_names(vocab))), status
        return guard(work)

    def classify(path, boxes_text, vocab_text, progress=gr.Progress()):
        def work():
            progress(0.1, desc="reading the image")
            image, vocab = load_upload(path), parse_vocabulary(vocab_text)
            boxes = parse_boxes(boxes_text, image.shape[1], image.shape[0])
            progress(0.4, desc="classifying boxes")
            probs = engine.classify_boxes(image, boxes, vocab)
            k, vocab = min(5, len(vocab)), class_names(vocab)
            top, rows, shown = probs.topk(k, dim=-1), [], []
            for i, (scores, labels) in enumerate(zip(top.values, top.indices)):
                names = [vocab[int(c)] for c in labels]
                rows.append([i + 1, *(round(float(v)) for v in boxes[i]),
                             "; ".join(f"{n} {float(s):.3f}" for n, s in zip(names, scores))])
                shown.append((tuple(round(float(v)) for v in boxes[i]), names[0]))
            status = f"{len(boxes)} boxes over {len(vocab)} classes: " + ", ".join(
                f"box {i + 1}: {name}" for i, (_, name) in enumerate(shown))
            return gr.AnnotatedImage(value=(image, shown), color_map=colour_map(vocab)), rows, status
        return guard(work)

    with gr.Blocks(title="fgclip2_det: FG-CLIP 2 open-vocabulary demo") as app:
        gr.Markdown(f"# FG-CLIP 2 open-vocabulary demo\n{model_note + ' ' if model_note else ''}"
                    f"Checkpoint: `{engine.checkpoint}` · detection: {det_source} · segmentation: {seg_source}. "
                    "Vocabularies may mix English and Chinese.", elem_id="model")
        if notice:
            gr.Markdown(f"**Notice:** {notice}", elem_id="notice")
        with gr.Tab("Detection", id="detection"):
            with gr.Row():
                with gr.Column():
                    det_image = image_input("det-image")
                    det_vocab = vocabulary_box("det-vocab", vocabulary)
                    det_thr = gr.Slider(0.0, 1.0, value=0.3, step=0.05, label="Minimum score", elem_id="det-thr")
                    det_run = gr.Button("Detect", variant="primary", elem_id="det-run")
                with gr.Column():
                    det_out = gr.AnnotatedImage(label="Detections", elem_id="det-out")
                    det_status = gr.Markdown(elem_id="det-status")
                    det_table = gr.Dataframe(headers=["label", "score", "x1", "y1", "x2", "y2"], label="Boxes",
                                             elem_id="det-table")
            if examples:
                gr.Examples([[e] for e in examples], [det_image], label="Held-out examples", elem_id="det-examples")
            det_run.click(detect, [det_image, det_vocab, det_thr], [det_out, det_table, det_status])
        with gr.Tab("Heat map", id="heatmap"):
            with gr.Row():
                with gr.Column():
                    heat_image = image_input("heat-image")
                    heat_query = gr.Textbox(vocabulary.split(",")[0].split("|")[0].strip() if vocabulary != DEFAULT_VOCAB
                                            else "a dog", label="Text query (English or Chinese)", elem_id="heat-query")
                    heat_run = gr.Button("Show similarity", variant="primary", elem_id="heat-run")
                with gr.Column():
                    heat_out = gr.Image(label="Similarity", elem_id="heat-out")
                    heat_status = gr.Markdown(elem_id="heat-status")
            heat_run.click(heatmap, [heat_image, heat_query], [heat_out, heat_status])
        with gr.Tab("Segmentation", id="segmentation"):
            with gr.Row():
                with gr.Column():
                    seg_image = image_input("seg-image")
                    seg_vocab = vocabulary_box("seg-vocab", vocabulary)
                    seg_run = gr.Button("Segment", variant="primary", elem_id="seg-run")
                with gr.Column():
                    seg_out = gr.AnnotatedImage(label="Segmentation", elem_id="seg-out")
                    seg_status = gr.Markdown(elem_id="seg-status")
            if examples:
                gr.Examples([[e] for e in examples], [seg_image], label="Held-out examples", elem_id="seg-examples")
            seg_run.click(segment, [seg_image, seg_vocab], [seg_out, seg_status])
        with gr.Tab("Box classification", id="boxes"):
            with gr.Row():
                with gr.Column():
                    box_image = image_input("box-image")
                    box_list = gr.Textbox("", lines=4, label="Boxes: one x1, y1, x2, y2 per line (pixels)",
                                          placeholder="10, 20, 200, 180", elem_id="box-list")
                    box_vocab = vocabulary_box("box-vocab", vocabulary)
                    box_run = gr.Button("Classify boxes", variant="primary", elem_id="box-run")
                with gr.Column():
                    box_out = gr.AnnotatedImage(label="Top-1 per box", elem_id="box-out")
                    box_status = gr.Markdown(elem_id="box-status")
                    box_table = gr.Dataframe(headers=["box", "x1", "y1", "x2", "y2", "top-5"], label="Top-5",
                                             elem_id="box-table")
            box_run.click(classify, [box_image, box_list, box_vocab], [box_out, box_table, box_status])
    app.queue(default_concurrency_limit=1, max_size=16)
    return app


def fallback_checkpoint(demo: Path) -> tuple[Path, str]:
    """The tiny random checkpoint (generated once), and the notice the page shows about it."""
    if not (TINY_CHECKPOINT / "config.json").is_file():
        from fgclip2_det.model.tiny import make_tiny_checkpoint

        make_tiny_checkpoint(TINY_CHECKPOINT, seed=0)
    return TINY_CHECKPOINT, (f"no `--checkpoint` given and no demo run in `{demo}`, so this runs the tiny FG-CLIP 2 "
                             f"with random weights (`{os.path.relpath(TINY_CHECKPOINT, REPO)}`): everything works, "
                             "the predictions mean nothing. Run `make demo` (about 20 min on 2 CPU cores) and then "
                             "`make serve` to serve the models it trains, or restart with "
                             "`--checkpoint checkpoints/fg-clip2-base` for released weights.")


def demo_manifest(demo: Path) -> dict | None:
    """``DEMO/serve.json`` written by ``tools/run_demo.py`` when every file it names exists, else None."""
    import json

    path = demo / "serve.json"
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text(encoding="utf-8"))
    files = [manifest["checkpoint"], *manifest["detector"], *manifest["segmentor"], *manifest["examples"]]
    missing = [f for f in files if not Path(f).exists()]
    if missing:
        LOG.warning("%s names files that are gone (%s): not serving that demo run", path, ", ".join(missing[:3]))
        return None
    return manifest


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="FG-CLIP 2 folder (default: the tiny random one, with a notice)")
    parser.add_argument("--detector", nargs=2, metavar=("CONFIG", "WEIGHTS"), help="an FGCLIP2FViT config + .pth")
    parser.add_argument("--segmentor", nargs=2, metavar=("CONFIG", "WEIGHTS"), help="an FGCLIP2Segmentor config + .pth")
    parser.add_argument("--demo", default=str(REPO / "work_dirs" / "demo"),
                        help="without --checkpoint: serve the models of this `make demo` run (its serve.json; "
                             "default work_dirs/demo)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--request-timeout", type=float, default=120.0, help="seconds one request may take")
    parser.add_argument("--max-num-patches", type=int, default=None,
                        help="FG-CLIP 2 token budget per image (default 1024; a demo run's own budget, 256)")
    parser.add_argument("--cache-dir", help="on-disk text embedding cache (default: the toolkit's)")
    parser.add_argument("--text-attention-mask", choices=list(ATTENTION_MASK_CHOICES), default="auto",
                        help="mask pad tokens of class / query texts: auto (default) = exactly when the "
                             "checkpoint's tokenizer returns an attention mask, as the official evaluations")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    notice, page = None, {}
    detector, segmentor, budget = args.detector, args.segmentor, args.max_num_patches or 1024
    manifest = demo_manifest(Path(args.demo)) if args.checkpoint is None else None
    if manifest is not None:
        checkpoint, budget = manifest["checkpoint"], args.max_num_patches or manifest["max_num_patches"]
        detector, segmentor = detector or manifest["detector"], segmentor or manifest["segmentor"]
        page = dict(model_note=f"Models trained by `make demo` ({manifest['mode']} run in `{manifest['out']}`): a tiny "
                               "FG-CLIP 2 pretrained from random weights on the synthetic world, its open-vocabulary "
                               "detector and segmentor. The examples are held-out world images.",
                    vocabulary=manifest["vocabulary"], examples=manifest["examples"])
    elif args.checkpoint is None:
        checkpoint, notice = fallback_checkpoint(Path(args.demo))
    else:
        checkpoint = args.checkpoint
    try:
        engine = DemoEngine(checkpoint, detector=detector, segmentor=segmentor,
                            max_num_patches=budget, cache_dir=args.cache_dir,
                            text_attention_mask=ATTENTION_MASK_CHOICES[args.text_attention_mask])
    except (InputError, FileNotFoundError) as err:
        raise SystemExit(f"serve_demo.py: error: {err}") from None
    app = build_app(engine, notice, args.request_timeout, **page)
    LOG.info("serving on http://%s:%d", args.host, args.port)
    app.launch(server_name=args.host, server_port=args.port, show_error=True, share=False, inbrowser=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
