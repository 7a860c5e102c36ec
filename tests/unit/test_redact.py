from mlctl.redact import redact


def test_redacts_jwts_bearer_and_key_values():
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    text = (f"token {jwt} Authorization: Bearer abcdefgh12345678 "
            "password=hunter2 client_secret: s3cr3t {\"refresh_token\": \"r1r2r3\"}")
    out = redact(text)
    for secret in (jwt, "abcdefgh12345678", "hunter2", "s3cr3t", "r1r2r3"):
        assert secret not in out
    assert "Bearer <redacted>" in out


def test_leaves_ordinary_text():
    text = "cluster 'gcp' is not in platform lab; 4 GPUs requested"
    assert redact(text) == text
