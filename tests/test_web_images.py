"""The service page shows recent output thumbnails with their verdicts, and the reference pictures."""

from __future__ import annotations

import io
from datetime import timedelta

from PIL import Image

from monitor.scoring.profile import thumbnail
from monitor.store.models import Canary, ProbeResultRow, ReferenceImageRow, ResultImageRow
from tests.test_web import NOW, add_service, client, engine, session  # noqa: F401 - fixtures


def webp(colour) -> bytes:
    return thumbnail(Image.new("RGB", (512, 384), colour))


def add_output(session, service_id, verdict, *, kind="canary", reasons=(), colour=(200, 30, 30), minutes=0):
    row = ProbeResultRow(service_id=service_id, canary_id="apple", region="eu", kind=kind, outcome="ok",
                         started_at=NOW - timedelta(minutes=minutes), quality_verdict=verdict, quality_score=0.9,
                         quality_reasons=list(reasons))
    session.add(row)
    session.flush()
    session.add(ResultImageRow(result_id=row.id, service_id=service_id, canary_id="apple", created_at=row.started_at,
                               thumbnail=webp(colour)))
    session.commit()
    return row.id


def test_service_page_shows_thumbnails_with_verdicts_and_references(session, client):
    add_service(session, "sd")
    session.add(Canary(id="apple", prompt="an apple", size="512x512"))
    session.commit()
    good = add_output(session, "sd", "pass", minutes=10)
    bad = add_output(session, "sd", "degraded", reasons=["the image is <b>blurry</b>"], colour=(0, 0, 0))
    health = add_output(session, "sd", None, kind="health", minutes=5)
    session.add(ReferenceImageRow(service_id="sd", canary_id="apple", region="eu", hashes={}, stats={}, histogram=[],
                                  thumbnail=webp((10, 200, 10))))
    session.commit()

    html = client.get("/services/sd").get_data(as_text=True)
    assert f'data-result="{good}"' in html and f'data-result="{bad}"' in html
    assert f'data-result="{health}"' not in html  # health checks are not public results
    assert html.index(f'data-result="{bad}"') < html.index(f'data-result="{good}"')  # newest first
    assert "verdict-degraded" in html and "&lt;b&gt;blurry&lt;/b&gt;" in html and "<b>blurry" not in html
    assert 'data-kind="references"' in html

    image = client.get(f"/images/results/{good}.webp")
    assert image.status_code == 200 and image.mimetype == "image/webp"
    decoded = Image.open(io.BytesIO(image.data))
    assert max(decoded.size) <= 160 and decoded.size == (160, 120)  # aspect kept
    assert client.get(f"/images/results/{health}.webp").status_code == 404
    assert client.get("/images/results/999999.webp").status_code == 404
    ref_id = session.query(ReferenceImageRow.id).scalar()
    assert client.get(f"/images/references/{ref_id}.webp").mimetype == "image/webp"


def test_service_page_without_images_has_no_image_section(session, client):
    add_service(session, "plain")
    html = client.get("/services/plain").get_data(as_text=True)
    assert "Latest images" not in html
