import pytest

from memory_bridge.domain.outcomes import Accepted
from memory_bridge_cli.stores import (
    StoreInputError,
    operation_id_from,
    validate_description,
    validate_display_name,
)


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"operation-id": "proc_job_1"}, {"statusUrl": "/v1/ControlPlane/Operations/other"}, "proc_job_1"),
        ({}, {"statusUrl": "/v1/ControlPlane/Operations/proc_job_2"}, "proc_job_2"),
        ({}, {"statusUrl": "https://memory.twilio.com/v1/ControlPlane/Operations/proc_job_3"}, "proc_job_3"),
        ({"location": "https://memory.twilio.com/v1/ControlPlane/Operations/proc_job_4"}, {}, "proc_job_4"),
        ({}, {"message": "accepted"}, None),
    ],
)
def test_operation_id_from_header_or_status_url(headers, body, expected):
    assert operation_id_from(Accepted(202, body, headers)) == expected


def test_display_name_rules():
    assert validate_display_name("a-Z-9") == "a-Z-9"
    assert validate_display_name("x" * 64)
    for bad in ("", "x" * 65, "a b", "a_b", "é"):
        with pytest.raises(StoreInputError):
            validate_display_name(bad)


def test_description_rules():
    assert validate_description(None) is None
    assert validate_description("d" * 128)
    for bad in ("", "d" * 129):
        with pytest.raises(StoreInputError):
            validate_description(bad)
