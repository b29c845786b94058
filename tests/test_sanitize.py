from probes.sanitize import REDACTED, sanitize


def test_known_secret_and_credential_shapes_are_redacted():
    text = ("Incorrect API key provided: sk-proj-ABCDEF1234567890abc. Authorization: Bearer abc123def456ghi "
            "x-key=8f7e6d5c4b3a url?api_key=zzzz1234&x=1 hf_abcdefgh12345678 r8_ABCDEFGH12345678 my-own-secret-value")
    out = sanitize(text, secrets=["my-own-secret-value"])
    for leaked in ("sk-proj", "abc123def456ghi", "8f7e6d5c4b3a", "zzzz1234", "hf_abcdefgh", "r8_ABCDEFGH", "my-own-secret"):
        assert leaked not in out, (leaked, out)
    assert "Incorrect API key provided:" in out and out.count(REDACTED) >= 7


def test_prose_stays_readable_and_one_line():
    out = sanitize("The key provided is not valid.\nRetry\tlater")
    assert out == "The key provided is not valid. Retry later"


def test_capped_at_one_kilobyte_without_splitting_characters():
    out = sanitize("é" * 2000)
    assert len(out.encode()) <= 1024 and out.endswith("...")
    assert sanitize(None) is None
