"""mina.redact: credentials in URLs never reach a log line; everything else is left alone."""

from __future__ import annotations

import logging

from mina.redact import RedactFilter, redact


def test_credentials_in_queries_and_urls_are_replaced() -> None:
    line = '127.0.0.1 - - "GET /c/ab12?token=s3cr3t&slice=2 HTTP/1.1" 200'
    assert redact(line) == '127.0.0.1 - - "GET /c/ab12?token=[redacted]&slice=2 HTTP/1.1" 200'
    signed = "https://s3/b/k.ogg?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=f00d&X-Amz-Expires=900"
    assert redact(signed) == (
        "https://s3/b/k.ogg?X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]"
        "&X-Amz-Expires=900"
    )
    assert (
        redact("postgresql://mina:pw@db:5432/mina") == "postgresql://mina:[redacted]@db:5432/mina"
    )
    plain = "GET /api/conversations/ab12/events?after=3&limit=500 (key_id=4, user@example.com)"
    assert redact(plain) == plain


def test_the_filter_rewrites_a_formatted_record_and_keeps_it() -> None:
    record = logging.LogRecord(
        "werkzeug",
        logging.INFO,
        __file__,
        1,
        '%s "%s" %s',
        ("127.0.0.1", "GET /x?token=abc", 200),
        None,
    )
    assert RedactFilter().filter(record) is True
    assert record.getMessage() == '127.0.0.1 "GET /x?token=[redacted]" 200'
