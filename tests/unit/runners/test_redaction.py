"""Redacting secret values: whole, base64 at every alignment, split across writes."""

from __future__ import annotations

import base64

import pytest

from runners.redaction import Redactions

VALUE = b"hunter2-s3cret-VALUE"
RED = b"[redacted:k]"


def test_the_value_and_its_stripped_form_are_replaced() -> None:
    r = Redactions({"k": VALUE + b"\n"})
    assert r.bytes(b"say " + VALUE + b" twice " + VALUE + b"\n") == b"say " + RED + b" twice " + RED
    assert r.text("x" + VALUE.decode() + "y") == "x[redacted:k]y"


@pytest.mark.parametrize("prefix", [b"", b"a", b"ab", b"abc", b"abcd"])
@pytest.mark.parametrize("suffix", [b"", b"\n", b"zz"])
@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_base64_of_the_value_inside_other_bytes_is_replaced(
    prefix: bytes, suffix: bytes, encode: object
) -> None:
    assert callable(encode)
    encoded: bytes = encode(prefix + VALUE + suffix)
    out = Redactions({"k": VALUE}).bytes(encoded)
    assert RED in out
    # What is left of the encoding is the unaligned edges: at most 4 characters each side.
    left, _, right = out.partition(RED)
    assert len(left) <= len(encode(prefix)) + 4 and len(right) <= 8
    assert base64.b64encode(VALUE[1:-1]) not in out


def test_a_value_split_across_two_writes_at_every_byte() -> None:
    r = Redactions({"k": VALUE, "other": b"second-secret"})
    data = b"xx" + VALUE + b"yy" + base64.b64encode(b"Z" + VALUE) + b"--second-secret" + VALUE
    for cut in range(len(data) + 1):
        stream = r.stream()
        out = stream.feed(data[:cut]) + stream.feed(data[cut:]) + stream.flush()
        assert VALUE not in out and b"hunter" not in out and b"second-" not in out, cut
        assert out.count(b"[redacted:") == 4, (cut, out)


def test_a_stream_holds_back_at_most_the_longest_pattern_less_one() -> None:
    r = Redactions({"k": VALUE})
    stream = r.stream()
    out = stream.feed(b"a" * 1000)
    assert len(out) >= 1000 - (r.longest - 1)
    assert out + stream.flush() == b"a" * 1000


def test_json_strings_and_keys_are_redacted() -> None:
    r = Redactions({"k": VALUE})
    value = {
        "list": [VALUE.decode(), 1, None],
        VALUE.decode(): {"b64": base64.b64encode(VALUE).decode()},
    }
    assert r.json(value) == {
        "list": ["[redacted:k]", 1, None],
        "[redacted:k]": {"b64": "[redacted:k]"},
    }


def test_no_secrets_change_nothing() -> None:
    r = Redactions({})
    assert not r and r.bytes(b"abc") == b"abc" and r.stream().feed(b"abc") == b"abc"
