"""Ask a trained run a question about an image and print its answer.

    python -m projlab.evaluation.chat --run runs/<sweep>/<arm> --image photo.jpg --prompt "What is on the table?"

The question goes into the run's own prompt template with the image where the template puts it (no
`--image`: a question alone); the answer is generated greedily, or sampled with `--temperature`/`--top-p`.
"""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from projlab import build
from projlab.cli import ArgumentParser
from projlab.console import quiet_third_party
from projlab.errors import UserError, exit_on_user_error
from projlab.evaluation.generate import add_decoding_arguments, decoding_from, generate


def read_image(path: str) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise UserError(f"image '{path}' does not exist") from None
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(f"image '{path}' cannot be read: {' '.join(str(err).split())}") from None


@exit_on_user_error
def main(argv: list[str] | None = None) -> str:
    quiet_third_party()
    parser = ArgumentParser(prog="python -m projlab.evaluation.chat", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a run folder (runs/<sweep>/<arm>) or a checkpoint in one")
    parser.add_argument("--prompt", required=True, help="the question")
    parser.add_argument("--image", help="the image it is about (none: a question alone)")
    add_decoding_arguments(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not args.prompt.strip():
        raise UserError("--prompt is empty; give a question")
    image = read_image(args.image) if args.image else None  # before the model loads: a typo fails at once
    decoding = decoding_from(args)
    run = build.trained(Path(args.run))
    (answer,) = generate(run.module.model, run.processor, [args.prompt], [image] if image else None, decoding)
    print(answer)
    return answer


if __name__ == "__main__":
    main()
