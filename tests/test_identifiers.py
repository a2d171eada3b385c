"""The one identifier codec: targets, raw ids, the wire model and the SDK's classes agree."""

from __future__ import annotations

import pytest
from azure.communication.callautomation import CommunicationUserIdentifier, PhoneNumberIdentifier

from common.call_automation import sdk_identifier
from common.identifiers import (
    ACS_USER,
    PHONE,
    TARGET_FORMS,
    Identifier,
    IdentifierError,
    from_raw_id,
    from_wire,
    parse_target,
)

NUMBER = "+14255550100"
USER = "8:acs:5e7a2b1c-0d4f-4a3e-9b8c-1f2e3d4c5b6a_00000000-0000-0000-0000-00000000b07"


def test_targets_have_the_wire_shape_acs_sends() -> None:
    # protocols.md §2.4: CommunicationIdentifierModel as it appears in IncomingCall's `to` and `from`
    assert parse_target(NUMBER).wire() == {
        "kind": "phoneNumber",
        "rawId": "4:+14255550100",
        "phoneNumber": {"value": "+14255550100"},
    }
    assert parse_target(USER).wire() == {
        "kind": "communicationUser",
        "rawId": USER,
        "communicationUser": {"id": USER},
    }


@pytest.mark.parametrize("target", [NUMBER, USER])
def test_the_sdk_computes_the_same_raw_id(target: str) -> None:
    identity = parse_target(target)
    sdk = sdk_identifier(identity)
    assert isinstance(sdk, PhoneNumberIdentifier if identity.kind == PHONE else CommunicationUserIdentifier)
    assert sdk.raw_id == identity.raw_id


@pytest.mark.parametrize(
    "value",
    [f"{NUMBER}\n", "4:+14255550100", "14255550100", "+0123456789", "8:acs:x_y", f"{USER}\n", None, 7],
)
def test_targets_are_whole_values_of_either_form(value: object) -> None:
    with pytest.raises(IdentifierError) as refused:
        parse_target(value, "TRANSFER_TARGET")
    assert str(refused.value) == f"TRANSFER_TARGET must be {TARGET_FORMS}"  # never the value itself


def test_raw_ids_say_their_kind() -> None:
    assert from_raw_id("4:+14255550100") == Identifier(PHONE, "4:+14255550100", NUMBER)
    assert from_raw_id(USER) == Identifier(ACS_USER, USER)
    anonymous = from_raw_id("4:anonymous")
    assert (anonymous.kind, anonymous.phone_number, anonymous.masked()) == (PHONE, None, "*********")
    assert from_raw_id("8:orgid:someone").kind == "unknown"


@pytest.mark.parametrize("raw_id", ["4:+14255550100", USER, "4:anonymous", "8:orgid:someone"])
def test_the_wire_model_round_trips(raw_id: str) -> None:
    identity = from_raw_id(raw_id)
    assert from_wire(identity.wire(), "to") == identity


def test_older_payloads_without_kind_or_raw_id_still_parse() -> None:
    assert from_wire({"phoneNumber": {"value": NUMBER}}, "to") == parse_target(NUMBER)
    assert from_wire({"communicationUser": {"id": USER}}, "to") == parse_target(USER)
    with pytest.raises(IdentifierError, match=r"^from has no rawId$"):
        from_wire({"kind": "microsoftTeamsUser"}, "from")
    with pytest.raises(IdentifierError, match=r"^data\.to must be a communication identifier object$"):
        from_wire("4:+14255550100", "data.to")


def test_shown_masks_numbers_and_only_numbers() -> None:
    assert parse_target(NUMBER).masked() == "+14*****0100"
    assert parse_target(NUMBER).shown(str) == NUMBER  # AUDIT_UNMASKED_NUMBERS
    assert parse_target(USER).masked() == USER


def test_users_belong_to_the_resource_their_id_names() -> None:
    resource = "5E7A2B1C-0D4F-4A3E-9B8C-1F2E3D4C5B6A"
    assert parse_target(USER).is_user_of(resource)
    assert not parse_target(USER).is_user_of("11111111-2222-3333-4444-555555555555")
    assert not parse_target(NUMBER).is_user_of(resource)
