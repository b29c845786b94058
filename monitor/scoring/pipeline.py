"""The scoring pipeline: runs the stages cheapest first and stops on a decisive failure."""

from __future__ import annotations

import time

from monitor.config import QualityConfig
from monitor.scoring.profile import ReferenceProfile
from monitor.scoring.types import Assessment, ScoringInput, Stage, rgb_or_grey

#: seconds of scoring after which the remaining stages are skipped (decoding is bounded in bytes by
#: ``validate.MAX_DECODED_BYTES``, so even the largest picture accepted reaches the budget check)
SCORING_BUDGET_S = 10.0


def _stages() -> list[Stage]:
    from monitor.scoring import brisque, clip, detectors, hashes, ocr, references, resolution, validate

    return [validate.decode_and_validate, *detectors.DETECTORS, resolution.upscaled, hashes.perceptual_hashes,
            brisque.no_reference_quality, references.measure, references.compare, references.stuck, ocr.expected_text,
            clip.prompt_agreement]


def score_image(
    data: bytes, *, requested_size: tuple[int, int] | None = None, prompt: str | None = None, size_check: str = "exact",
    references: list[bytes] | None = None, noise_check: bool | None = None, **options,
) -> Assessment:
    """Run every stage in order; a stage that fails decisively ends the run.

    ``references`` (encoded pictures) become an ad-hoc profile judged whatever the seed; the
    other ``ScoringInput`` fields (``profile``, ``seed``, ``recent``, ``quality``, ...) pass as keywords.
    """
    given = ScoringInput(data=data, requested_size=requested_size, prompt=prompt, size_check=str(size_check),
                         references=list(references) if references else None, **options)
    if noise_check is not None:
        given.noise_check = noise_check
    elif "quality" in options:
        given.noise_check = given.quality.noise_check
    if given.references and given.profile is None:
        given.profile = profile_from_images(given.references, quality=given.quality)
    return run_stages(given)


def run_stages(given: ScoringInput, *, keep_image: bool = False, budget_s: float = SCORING_BUDGET_S) -> Assessment:
    """Run the stages in order until one is decisive or ``budget_s`` of scoring has passed.

    Stages left when the budget is spent are skipped and named in ``reasons`` (flag
    ``scoring_budget``); the verdict stands on the stages that ran, so a slow analysis never turns
    into a quality failure.
    """
    assessment = Assessment(size_bytes=len(given.data))
    began = time.monotonic()
    stages = _stages()
    for index, stage in enumerate(stages):
        if not (given.all_metrics or _read_by_verdict(stage, given)):
            continue
        stage(given, assessment)
        if assessment.decisive:
            break
        spent = time.monotonic() - began
        if spent > budget_s and index + 1 < len(stages):
            skipped = ", ".join(getattr(s, "__name__", "stage") for s in stages[index + 1:])
            assessment.flags.append("scoring_budget")
            assessment.reasons.append(f"scoring stopped after {spent:.1f}s (budget {budget_s:g}s); skipped: {skipped}")
            break
    if given.want_thumbnail and assessment.image is not None:
        previous = given.previous_thumbnail
        same_file = previous is not None and previous[0] == assessment.sha256
        assessment.thumbnail = previous[1] if previous is not None and same_file else _thumbnail(assessment.image)
    if not keep_image:
        release(assessment)
    return assessment


def release(assessment: Assessment) -> None:
    """Drop the decoded pixels: nothing keeps them alive past scoring."""
    assessment.release()


def _thumbnail(image) -> bytes:
    """``profile.thumbnail`` of the picture box-reduced to about the thumbnail's size first: the
    Lanczos filter then works on a few hundred pixels, not on a full-size copy."""
    from monitor.scoring.profile import THUMBNAIL_SIDE, thumbnail

    image = rgb_or_grey(image)
    factor = min(image.width, image.height) // THUMBNAIL_SIDE
    return thumbnail(image.reduce(factor) if factor > 1 else image)


def _read_by_verdict(stage: Stage, given: ScoringInput) -> bool:
    """False for a stage that only measures figures nothing will read: BRISQUE and the profile
    statistics are judged against a reference profile only (``references.compare``), never alone."""
    from monitor.scoring import brisque, references

    if stage is brisque.no_reference_quality or stage is references.measure:
        return given.profile is not None and bool(given.profile.images)
    return True


def reference_entry(data: bytes, *, seed: int | None = None, quality: QualityConfig | None = None,
                    with_thumbnail: bool = True):
    """Score a reference picture and return its ``ReferenceImage`` (None when it is not a usable picture)."""
    from monitor.scoring.profile import reference_from_assessment

    given = ScoringInput(data=data, quality=quality or QualityConfig(), want_thumbnail=with_thumbnail)
    assessment = run_stages(given)
    if not assessment.valid or "blank" in assessment.flags:
        return None
    return reference_from_assessment(assessment, seed, with_thumbnail=with_thumbnail)


def profile_from_images(images: list[bytes], *, quality: QualityConfig | None = None) -> ReferenceProfile:
    """An ad-hoc profile of pictures given by hand (``genstatus score --reference``): drift is always judged."""
    return hand_references(images, quality=quality)[0]


def hand_references(images: list[bytes], names: list[str] | None = None, *, quality: QualityConfig | None = None,
                    ) -> tuple[ReferenceProfile, list[bytes], list[str]]:
    """The ad-hoc profile of pictures given by hand, the pictures it kept, and one line per picture left
    out, naming it (``names``, else its position) and saying why: a picture that fails scoring itself
    (not an image, blank, noise ...) cannot say what the canary normally looks like."""
    from monitor.enums import Verdict
    from monitor.scoring.profile import reference_from_assessment

    entries, kept, dropped = [], [], []
    for index, data in enumerate(images):
        assessment = run_stages(ScoringInput(data=data, quality=quality or QualityConfig(), want_thumbnail=False))
        if assessment.valid and assessment.verdict is not Verdict.FAIL:
            entries.append(reference_from_assessment(assessment, with_thumbnail=False))
            kept.append(data)
        else:
            name = names[index] if names else f"#{index + 1}"
            dropped.append(f"reference {name} dropped: {assessment.reasons[0] if assessment.reasons else 'not usable'}")
    return ReferenceProfile(images=entries, always_match=True), kept, dropped
