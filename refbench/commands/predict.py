"""``refbench predict``: a model's masks for one's own images and sentences."""
from __future__ import annotations

from pathlib import Path

import click

from refbench.commands.options import BATCH_SIZE, PRECISION
from refbench.core.errors import RefbenchError


@click.command(name="predict")
@click.option("--model", required=True, help="Registered model name (see `refbench models`).")
@click.option("--variant", default=None, help="Model variant (default: the model's first; 'tiny' ships with weights).")
@click.option("--checkpoint", default=None,
              help="Checkpoint file (default: refbench's shipped weights of the variant).")
@click.option("--protocol", default=None,
              help="Protocol whose transforms and canvas are used (default: the model's paper protocol).")
@click.option("--image", type=click.Path(path_type=Path), default=None, help="Image file (JPEG, PNG, ...).")
@click.option("--text", "texts", multiple=True, help="Referring expression (repeat for several sentences).")
@click.option("--batch", "batch_file", type=click.Path(path_type=Path), default=None,
              help='JSON-lines file, one {"image": PATH, "text": ["...", ...]} per line (PATH relative to the file).')
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Folder for <stem>_<k>.png masks, <stem>_<k>_overlay.png figures and predictions.jsonl.")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available).")
@click.option("--precision", type=PRECISION, default="fp32", show_default=True)
@click.option("--batch-size", type=BATCH_SIZE, default=8, show_default=True, help="Sentences per forward pass.")
def predict_cmd(model, variant, checkpoint, protocol, image, texts, batch_file, out, device, precision,
                batch_size) -> None:
    """Segment what each sentence refers to in an image: a mask PNG at the image's size and an overlay per sentence.

    Example: refbench predict --model magnet --variant tiny --image scene.jpg --text "the red circle" --out preds/
    """
    from refbench.commands.reporting import CLI
    from refbench.predict import check_jobs, check_out, check_texts, load_predictor, read_batch_file, run_predict

    if batch_file is not None and (image is not None or texts):
        raise RefbenchError("--batch FILE replaces --image/--text; give one or the other")
    if batch_file is None:
        if image is None:
            raise RefbenchError("give --image IMG with one or more --text \"...\", or --batch FILE")
        jobs = [(image, check_texts(list(texts), f"--image {image}"))]
    else:
        jobs = read_batch_file(batch_file)
    check_out(out, [checkpoint, batch_file, *[img for img, _ in jobs]])
    check_jobs(jobs)  # every image readable (headers) before the model is loaded
    predictor = load_predictor(model, variant, checkpoint, protocol, device, precision)
    rows = run_predict(predictor, jobs, out, batch_size, CLI)
    for note in predictor.notes:
        CLI.message(f"note: {note}")
    CLI.message(f"protocol {predictor.protocol.name} [{predictor.protocol.hash()}]: canvas "
                + (f"{predictor.protocol.canvas}x{predictor.protocol.canvas}, mapped to each image's size (nearest)"
                   if predictor.protocol.canvas else "the image's size"))
    for r in rows:
        CLI.message(f"{r['mask']}: {100 * r['foreground_share']:.2f}% of the image  \"{' '.join(r['text'].split())}\"")
    CLI.message(f"wrote {len(rows)} mask(s) and overlay(s) and {out / 'predictions.jsonl'}")
