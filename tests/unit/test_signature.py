from memory_bridge.domain.signature import (
    MAX_HASHED_BYTES,
    compute_signature,
    is_valid_signature,
    url_variants,
)

# Twilio's published example (twilio-notes.md, "X-Twilio-Signature").
EXAMPLE_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
EXAMPLE_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+12349013030"),
    ("Digits", "1234"),
    ("From", "+12349013030"),
    ("To", "+18005551212"),
]
EXAMPLE_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def check(signature, *, urls=(EXAMPLE_URL,), params=EXAMPLE_PARAMS, tokens=("12345",), body=b""):
    return is_valid_signature(
        urls=urls, params=params, raw_body=body, signature=signature, auth_tokens=tokens
    )


def test_twilio_published_example():
    assert compute_signature(EXAMPLE_URL, EXAMPLE_PARAMS, "12345") == EXAMPLE_SIGNATURE
    assert check(EXAMPLE_SIGNATURE)


def test_parameter_order_does_not_matter():
    assert check(EXAMPLE_SIGNATURE, params=list(reversed(EXAMPLE_PARAMS)))


def test_wrong_token_url_param_or_signature_fails():
    assert not check(EXAMPLE_SIGNATURE, tokens=("54321",))
    assert not check(EXAMPLE_SIGNATURE, urls=("https://mycompany.com/myapp.php?foo=1&bar=3",))
    assert not check(EXAMPLE_SIGNATURE, params=[*EXAMPLE_PARAMS[:-1], ("To", "+18005551213")])
    assert not check(EXAMPLE_SIGNATURE[:-2] + "A=")


def test_missing_signature_or_no_token_fails_closed():
    assert not check(None)
    assert not check("")
    assert not check(EXAMPLE_SIGNATURE, tokens=())


def test_default_port_variants_are_accepted_both_ways():
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert check(EXAMPLE_SIGNATURE, urls=(with_port,))
    signed_with_port = compute_signature(with_port, EXAMPLE_PARAMS, "12345")
    assert check(signed_with_port)
    assert url_variants("http://h.example/x") == ["http://h.example/x", "http://h.example:80/x"]
    assert url_variants("https://h.example:8443/x") == ["https://h.example:8443/x"]


def test_repeated_keys_and_blank_values_are_all_signed():
    params = [("Media", "b"), ("Body", ""), ("Media", "a")]
    url = "https://example.com/hook"
    signature = compute_signature(url, params, "tok")
    # Twilio sorts by name, then each value of a repeated name: Body, Media=a, Media=b.
    assert signature == compute_signature(url, [("Body", ""), ("Media", "a"), ("Media", "b")], "tok")
    assert check(signature, urls=(url,), params=params, tokens=("tok",))
    # Keeping only the first value of a repeated key (a known validator bug) must not verify.
    assert not check(signature, urls=(url,), params=[("Body", ""), ("Media", "b")], tokens=("tok",))
    # Dropping a blank value must not verify either.
    assert not check(signature, urls=(url,), params=[("Media", "b"), ("Media", "a")], tokens=("tok",))


def test_previous_token_is_accepted_during_rotation():
    assert check(EXAMPLE_SIGNATURE, tokens=("new-token", "12345"))


def test_json_body_signed_by_hash_in_url():
    import hashlib

    body = b'{"EventType":"onMessageAdded"}'
    url = "https://example.com/hook?bodySHA256=" + hashlib.sha256(body).hexdigest()
    signature = compute_signature(url, [], "tok")
    assert check(signature, urls=(url,), params=[], tokens=("tok",), body=body)
    assert not check(signature, urls=(url,), params=[], tokens=("tok",), body=body + b" ")


def test_unreadable_urls_are_checked_as_given_and_never_raise():
    # Found by the property tests: a forged path or Host that urllib cannot split.
    for url in ("https://localhost[", "https://[::1/x", "https://h.example:99999/x"):
        assert url_variants(url) == [url]
        assert not check(EXAMPLE_SIGNATURE, urls=(url,))


def test_any_of_many_candidate_urls_may_match():
    forms = [f"https://mycompany.com/myapp.php?foo=1&bar=2&n={i}" for i in range(63)]
    assert check(EXAMPLE_SIGNATURE, urls=(*forms, EXAMPLE_URL))
    assert not check(EXAMPLE_SIGNATURE, urls=tuple(forms))
    assert not check(EXAMPLE_SIGNATURE, urls=(*forms, EXAMPLE_URL), tokens=("54321", "other"))


def test_candidates_past_the_hashing_budget_are_not_checked():
    # A forged request with huge fields costs what a single candidate costs, not 64 times that.
    huge = [*EXAMPLE_PARAMS, ("Body", "x" * (MAX_HASHED_BYTES // 2))]
    signature = compute_signature(EXAMPLE_URL, huge, "12345")
    assert check(signature, urls=(EXAMPLE_URL,), params=huge)  # the first is always checked
    assert not check(signature, urls=("https://mycompany.com/other", EXAMPLE_URL), params=huge)
    # Ordinary fields leave room for every candidate.
    small = [*EXAMPLE_PARAMS, ("Body", "x" * 60_000)]
    signature = compute_signature(EXAMPLE_URL, small, "12345")
    forms = tuple(f"https://mycompany.com/myapp.php?n={i}" for i in range(63))
    assert check(signature, urls=(*forms, EXAMPLE_URL), params=small, tokens=("old", "12345"))


def test_json_body_hash_form_among_other_candidates():
    import hashlib

    body = b'{"EventType":"onMessageAdded"}'
    digest = hashlib.sha256(body).hexdigest()
    url = f"https://example.com/hook?tenant=acme,eu&bodySHA256={digest}"
    signature = compute_signature(url, [], "tok")
    encoded = f"https://example.com/hook?tenant=acme%2Ceu&bodySHA256={digest}"
    assert check(signature, urls=(encoded, url), params=[], tokens=("tok",), body=body)
    assert not check(signature, urls=(encoded, url), params=[], tokens=("tok",), body=body + b" ")
