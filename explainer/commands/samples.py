"""`explainer samples --out-dir DIR`: write the bundled sample photos as PNG files (cat.png, coffee.png, ...)."""

from __future__ import annotations

import argparse

from explainer.commands._json import print_json
from explainer.commands._options import add_json_option, add_out_option
from explainer.commands._per_input import check_out_folder
from explainer.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the subcommand and its options to the CLI."""
    parser = subparsers.add_parser("samples", help="write the sample photos (cat, coffee, ...) as PNG files to try "
                                                   "the other commands on")
    add_out_option(parser, "dir", default=".", help="folder for cat.png, coffee.png, ...; created when missing")
    parser.add_argument("--force", action="store_true", help="overwrite files of the same name")
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write every sample photo; refuse to overwrite a file unless --force."""
    from explainer.data.images import sample_images

    folder = check_out_folder(args.out_dir)
    photos = sample_images()
    paths = {name: folder / f"{name}.png" for name in photos}
    taken = [str(path) for path in paths.values() if path.exists()]
    if taken and not args.force:
        raise InputError(f"{', '.join(taken)} already exist(s); pass --force to overwrite or pick another --out-dir.")
    rows = []
    for name, photo in photos.items():
        photo.save(paths[name])
        rows.append({"name": name, "file": str(paths[name]), "width": photo.width, "height": photo.height})
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        print(f"{row['file']}  {row['width']}×{row['height']}")
    return 0
