"""The pseudonym and the rewriting of a customer's data (db/customers.py), value by value:
what the erasure route's tests see in the tables, here rule by rule."""

from __future__ import annotations

import re
import uuid

from db.customers import Scrubber, is_erased_address, pseudonym_of

SECRET = b"test-token-secret"
TENANT = uuid.UUID("0190a2f4-6a2b-7c3d-8e4f-5a6b7c8d9e0f")
ADA = Scrubber(
    "erased-0123456789abcdef",
    "ada@example.test",
    names=frozenset({"Ada Lovelace", "Ada"}),
    phones=frozenset({"+4915123456789"}),
)


def test_a_pseudonym_is_erased_and_16_hex_digits() -> None:
    assert re.fullmatch(r"erased-[0-9a-f]{16}", pseudonym_of(SECRET, TENANT, "ada@example.test"))


def test_a_pseudonym_ignores_the_case_and_surrounding_spaces_of_the_address() -> None:
    assert pseudonym_of(SECRET, TENANT, " Ada@Example.TEST ") == pseudonym_of(
        SECRET, TENANT, "ada@example.test"
    )


def test_a_pseudonym_differs_per_tenant_and_per_secret() -> None:
    mine = pseudonym_of(SECRET, TENANT, "ada@example.test")
    assert pseudonym_of(SECRET, uuid.uuid4(), "ada@example.test") != mine
    assert pseudonym_of(b"another secret", TENANT, "ada@example.test") != mine


def test_an_address_of_the_erased_domain_is_a_pseudonyms() -> None:
    assert is_erased_address("Erased-0123456789abcdef@ERASED.invalid")
    assert not is_erased_address("ada@example.test")


def test_the_address_is_replaced_in_any_case_by_the_pseudonyms_address() -> None:
    assert ADA.text("550 <ADA@example.TEST>: refused") == (
        "550 <erased-0123456789abcdef@erased.invalid>: refused"
    )


def test_names_and_numbers_are_replaced_as_whole_words() -> None:
    said = ADA.text("Ada Lovelace (Ada) at +4915123456789 or 4915123456789")
    assert said == "P (P) at P or P".replace("P", "erased-0123456789abcdef")


def test_a_name_inside_another_word_or_in_another_case_stays() -> None:
    assert ADA.text("Adam read the ada-60 service notes") == "Adam read the ada-60 service notes"


def test_a_customer_object_becomes_the_pseudonymous_customer() -> None:
    stored = {"booking": {"customer": {"name": "Ada", "phone": "+4915123456789"}, "status": "x"}}
    assert ADA.json(stored) == {
        "booking": {
            "customer": {
                "name": "erased-0123456789abcdef",
                "email": "erased-0123456789abcdef@erased.invalid",
            },
            "status": "x",
        }
    }


def test_metadata_keeps_its_shape_and_loses_only_the_mentions() -> None:
    metadata = {"customer": {"crm": "c-1", "note": "Ada called"}, "n": 3}
    assert ADA.json(metadata, customers=False) == {
        "customer": {"crm": "c-1", "note": "erased-0123456789abcdef called"},
        "n": 3,
    }


def test_a_stripe_event_loses_its_personal_fields_and_keeps_the_rest() -> None:
    charge = {
        "object": "charge",
        "amount": 5000,
        "receipt_email": "ada@example.test",
        "billing_details": {"name": "Ada Lovelace", "address": {"city": "London"}},
        "shipping": None,
        "outcome": {"seller_message": "Payment for Ada Lovelace complete"},
    }
    assert ADA.stripe({"data": {"object": charge}}) == {
        "data": {
            "object": {
                "object": "charge",
                "amount": 5000,
                "receipt_email": None,
                "billing_details": None,
                "shipping": None,
                "outcome": {"seller_message": "Payment for erased-0123456789abcdef complete"},
            }
        }
    }
