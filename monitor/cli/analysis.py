"""``replay`` and ``score``: judging traces and images offline, without probing."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from monitor.cli.common import EXIT_OK, EXIT_UNHEALTHY, EXIT_USAGE, UsageError, load

MAX_IMAGE_FILE = 64 * 2**20  # read no further: ``score /dev/zero`` must not fill the memory
#: flags of a file ``score`` could not judge (exit 2): no bytes, not an image, a format or a size it does not
#: decode.  A truncated or corrupt image *was* judged (a broken picture): exit 1.
NOT_JUDGED = frozenset({"empty", "undecodable", "unexpected_format", "decompression_bomb"})


def printable_path(path: str) -> str:
    """A file name as it can be printed: bytes that are not UTF-8 (kept by Python as lone surrogates,
    which a strict UTF-8 stdout refuses with a traceback) shown escaped, as stderr shows them."""
    return path.encode("utf-8", "backslashreplace").decode("utf-8")


def cmd_replay(args: argparse.Namespace) -> int:
    from monitor.detection.detect import DetectorConfig
    from monitor.detection.replay import TraceError, read_trace, replay

    config = load(args) if args.config else None  # no -c: the documented defaults
    try:
        observations = read_trace(args.trace)
    except FileNotFoundError:
        raise UsageError(f"{args.trace}: no such trace file") from None
    except OSError as exc:  # a directory, no permission ...
        raise UsageError(f"{args.trace}: cannot read the trace file: {exc.strerror or exc}") from None
    except TraceError as exc:
        raise UsageError(str(exc)) from None
    incidents = replay(observations, DetectorConfig.from_config(config))
    if args.json:
        print(json.dumps({"incidents": [i.to_dict(with_updates=args.updates) for i in incidents]}, indent=2))
        return EXIT_OK
    print(f"{len(observations)} result{'' if len(observations) == 1 else 's'}, "
          f"{len(incidents)} incident{'' if len(incidents) == 1 else 's'}")
    for incident in incidents:
        data = incident.to_dict()
        subject = data["service"] or f"region {', '.join(data['regions'])}"
        end = f"resolved {data['resolved_at']}" if data["resolved_at"] else "still open"
        took = f" after {data['evidence_results']} bad results in a row" if data["evidence_results"] else ""
        print(f"  {data['kind']:<8} {data['impact']:<8} {data['audience']:<8} {subject} [{', '.join(data['regions'])}] "
              f"started {data['started_at']}, detected {data['detected_at']}{took}, {end}")
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    from monitor.enums import Verdict
    from monitor.scoring import score_image

    def read(path: str, what: str) -> bytes:
        """The file's bytes; a file we cannot read, or one too large to be an image, is a usage error (exit 2)."""
        try:
            with Path(path).open("rb") as stream:
                data = stream.read(MAX_IMAGE_FILE + 1)
        except FileNotFoundError:
            raise UsageError(f"{path}: no such {what} file") from None
        except OSError as exc:
            raise UsageError(f"{path}: cannot read the {what} file: {exc.strerror or exc}") from None
        if len(data) > MAX_IMAGE_FILE:
            raise UsageError(f"{path}: over {MAX_IMAGE_FILE // 2**20} MB, too large to be a generated image")
        return data

    data = read(args.image, "image")
    named = [(printable_path(path), read(path, "reference")) for path in args.reference or []]
    if args.expect_text:
        from monitor.scoring.ocr import ocr_available

        if not ocr_available():
            raise UsageError("--expect-text needs the OCR extra: pip install 'genstatus[ocr]'")
    profile = None
    references: list[bytes] = []
    dropped: list[str] = []
    if named:
        from monitor.scoring.pipeline import hand_references

        profile, references, dropped = hand_references([data for _, data in named], [name for name, _ in named])
    assessment = score_image(data, prompt=args.prompt, references=references or None,
                             profile=profile if references else None, noise_check=True, expect_text=args.expect_text)
    assessment.reasons.extend(dropped)
    result = assessment.to_dict()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        line = f"{printable_path(args.image)}: {result['verdict']} (score {result['score']:.2f})"
        if result["reference_distance"] is not None:
            line += f", {result['reference_distance']} bits from the nearest reference"
        print(line)
        for reason in result["reasons"]:
            print(f"  {reason}")
    if NOT_JUDGED & set(assessment.flags):
        return EXIT_USAGE
    return EXIT_OK if assessment.verdict is Verdict.PASS else EXIT_UNHEALTHY
