"""`idrift identity IMAGE_A IMAGE_B`: the identity similarity of the faces in two images.

Each image is measured on its largest face (the rule for generated images); the output says how many
faces each image shows and which one was used, so a surprising number can be checked by eye; then the
backend's same-person threshold, where that number comes from, and the decision (idrift/faces/scales.py).
"""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "identity",
        help="cosine identity similarity between the faces of two images",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("image_a", metavar="IMAGE_A", help="first image (e.g. the reference photo)")
    parser.add_argument("image_b", metavar="IMAGE_B", help="second image (e.g. a generated image)")
    add_backend_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(func=run)


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """--backend, --antelopev2, --det-threshold: shared with `idrift data build-identities`."""
    from idrift.faces import BACKENDS

    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="arcface",
        help="arcface: insightface antelopev2, the paper's metric (needs --antelopev2 or $IDRIFT_ANTELOPEV2); "
        "dlib: offline backend with packaged weights (different numbers). Default: arcface",
    )
    parser.add_argument(
        "--antelopev2",
        metavar="DIR",
        default=None,
        help="antelopev2 model folder (or an insightface root holding models/antelopev2); default $IDRIFT_ANTELOPEV2, "
        "else insightface's own model root ($INSIGHTFACE_HOME or ~/.insightface)",
    )
    parser.add_argument(
        "--det-threshold",
        type=float,
        default=None,
        help="detector threshold (default: 0.5 for arcface, 0.0 for dlib's HOG margin)",
    )


def backend_from_args(args):
    from idrift.errors import ModelFolderError
    from idrift.faces import make_backend

    kw = {} if args.det_threshold is None else {"det_threshold": args.det_threshold}
    if args.backend == "arcface":
        try:
            return make_backend("arcface", model_root=args.antelopev2, **kw)
        except ModelFolderError as exc:
            raise ModelFolderError(
                f"{exc}; or use --backend dlib for the offline backend (not the paper's metric)"
            ) from exc
    return make_backend("dlib", **kw)


def run(args) -> int:
    from idrift.errors import NoFaceError
    from idrift.faces import largest_face, load_image
    from idrift.faces.select import describe_face, describe_faces
    from idrift.metrics.identity import cosine_similarity

    # Read both images before loading any model, so a bad path fails at once.
    images = [(name, load_image(name)) for name in (args.image_a, args.image_b)]
    backend = backend_from_args(args)
    report = {"backend": backend.name, "backend_version": backend.version, "images": []}
    chosen = []
    for name, image in images:
        faces = backend.detect(image, with_age=True)
        face = largest_face(faces)
        if face is None:
            raise NoFaceError(
                f"{name}: no face found (backend {backend.name}, detector threshold {backend.det_threshold:g}); "
                "use an image with a clearly visible frontal face"
            )
        chosen.append(face)
        report["images"].append(
            {
                "image": name,
                "n_faces": len(faces),
                "bbox": [round(float(v), 1) for v in face.bbox],
                "det_score": round(float(face.score), 4),
                "all_faces": describe_faces(faces),
            }
        )
    from idrift.faces.scales import scale_of

    scale = scale_of(backend)
    report["cosine_similarity"] = cosine_similarity(chosen[0].embedding, chosen[1].embedding)
    report["same_person_threshold"] = scale.same_person
    report["same_person_threshold_source"] = scale.same_person_source
    report["same_person"] = scale.is_same_person(report["cosine_similarity"])
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for item, face in zip(report["images"], chosen):
        count = "1 face" if item["n_faces"] == 1 else f"{item['n_faces']} faces, using the largest"
        print(f"{item['image']}: {count}: {describe_face(face)}")
    print(f"cosine similarity ({backend.name}, {backend.version}): {report['cosine_similarity']:.4f}")
    sign = ">=" if report["same_person"] else "<"
    print(f"same person: {'yes' if report['same_person'] else 'no'} ({report['cosine_similarity']:.4f} {sign} "
          f"{scale.same_person:g}, {backend.name}'s threshold: {scale.same_person_source})")
    return 0
