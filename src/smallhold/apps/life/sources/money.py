"""Money sources: the pure rules (kinds, dedupe keys, payment pairs) and the parsers' doors.

The rules an alert stands on ("this was spending", "these two rows are one card payment")
live here, pure, so they can be read and tested without any file. The parsers live in
``ofx.py`` and ``csvbank.py`` (which import these rules) and are reached through
``parse_ofx`` / ``parse_csv`` / ``parse_csv_remembering`` here, imported when called.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from smallhold.apps.life.models import Problem, Transaction, TransactionKind

if TYPE_CHECKING:
    from smallhold.apps.life.sources.csvbank import CsvMapping

# A card bill settled: the card's side ("AUTOMATIC PAYMENT - THANK YOU", "AUSGLEICH
# KREDITKARTE") and the bank's side ("ONLINE PMT CARD 4821", "KREDITKARTENABRECHNUNG").
CARD_PAYMENT = re.compile(
    r"\b(AUTOMATIC PAYMENT|AUTOPAY|PAYMENT\b.*THANK|THANK YOU|PAYMENT RECEIVED|ONLINE PAYMENT|"
    r"AUSGLEICH|KREDITKARTENABRECHNUNG|KARTENABRECHNUNG|ZAHLUNG ERHALTEN|EINZAHLUNG|"
    r"(PMT|PAYMENT|ZAHLUNG)\b.*\b(CARD|VISA|MASTERCARD|AMEX|KREDITKARTE)|"
    r"(CARD|VISA|MASTERCARD|AMEX|KREDITKARTE)\b.*\b(PMT|PAYMENT|ZAHLUNG))",
    re.IGNORECASE)
PAYROLL = re.compile(r"(PAYROLL|SALARY|\bWAGES?\b|GEHALT|\bLOHN|BEZÜGE|BEZUEGE|DIRECT DEP)",
                     re.IGNORECASE)
REFUND = re.compile(r"(RETURN|REFUND|GUTSCHRIFT|ERSTATTUNG|RÜCKBUCHUNG|STORNO|REVERSAL)",
                    re.IGNORECASE)
FEE = re.compile(r"(\bFEE\b|INTEREST CHARGE|GEBÜHR|ENTGELT|ZINSEN)", re.IGNORECASE)
ATM = re.compile(r"(\bATM\b|GELDAUTOMAT|BARGELD|CASH WITHDRAWAL|BARGELDAUSZAHLUNG)",
                 re.IGNORECASE)
TRANSFER = re.compile(r"(TRANSFER|UMBUCHUNG|SPARPLAN|\bXFER\b)", re.IGNORECASE)

PAIR_DAYS = 5  # a bank debit and the card's credit for one bill post within a few days

# Charges billed abroad: banks write the merchant's own price and the rate into the text
# ("NETFLIX.COM USD 15.49 KURS 1.0856", "12,99 USD"). Only ISO codes that are currencies
# count, so "THE SPA 12.00" or a store number is never read as one.
ISO_CODES = frozenset({"USD", "EUR", "GBP", "CHF", "JPY", "CAD", "AUD", "NZD", "SEK", "NOK",
                       "DKK", "PLN", "CZK", "HUF", "CNY", "HKD", "SGD", "INR", "MXN", "BRL",
                       "ZAR", "TRY", "ILS", "KRW"})
_AMOUNT = r"\d{1,3}(?:[.,']\d{3})+[.,]\d{2}|\d+[.,]\d{2}"
IN_TEXT = re.compile(rf"\b(?P<c1>[A-Z]{{3}}) ?(?P<a1>{_AMOUNT})(?![\d.,])|"
                     rf"(?<![\d.,])(?P<a2>{_AMOUNT}) ?(?P<c2>[A-Z]{{3}})\b")
RATE = re.compile(r"\b(?:WECHSELKURS|KURS|EXCHANGE RATE|FX RATE|RATE)\b\s*[:=]?\s*"
                  r"\d+(?:[.,]\d+)?", re.IGNORECASE)
FOREIGN = re.compile(r"\b(FOREIGN|FREMDW\w*|AUSLANDS\w*|INTL|INTERNATIONAL|FX)\b",
                     re.IGNORECASE)


def card_kind(amount: Decimal, bank_type: str, text: str) -> TransactionKind:
    """A card statement row's kind: the bill's payment, a refund, a fee or a purchase.

    The type column wins over the description ("Return", "Payment"); a credit that is no
    payment is a refund, because money only comes *into* a card account those two ways.
    """
    both = f"{bank_type} {text}"
    if re.fullmatch(r"\s*payments?\s*", bank_type, re.IGNORECASE) or CARD_PAYMENT.search(text):
        return "card_payment"
    if REFUND.search(bank_type) or amount > 0:
        return "refund"
    if FEE.search(both):
        return "fee"
    return "purchase" if amount < 0 else "other"


def bank_kind(amount: Decimal, bank_type: str, text: str) -> TransactionKind:
    """A current account row's kind from its description when the source gives no TRNTYPE."""
    both = f"{bank_type} {text}"
    if amount > 0:
        return "income" if PAYROLL.search(both) else "other"
    if CARD_PAYMENT.search(both):
        return "card_payment"
    if ATM.search(both):
        return "withdrawal"
    if TRANSFER.search(both):
        return "transfer"
    if FEE.search(both):
        return "fee"
    return "purchase" if amount < 0 else "other"


def normalise_description(text: str) -> str:
    """Upper case, letters and digits only, single spaces: exports differ in punctuation."""
    return " ".join(re.sub(r"[^0-9A-ZÄÖÜß]+", " ", text.upper()).split())


def _plain_amount(text: str) -> Decimal:
    """"1.234,56", "1,234.56", "12,99", "12.99" as a Decimal: the last separator before two
    digits is the decimal one, the others group thousands."""
    whole, cents = text[:-3], text[-2:]
    return Decimal(re.sub(r"[.,']", "", whole) + "." + cents)


def foreign_in_text(text: str, booked: str) -> tuple[Decimal, str] | None:
    """The merchant's own price written into a transaction's text, when it is in another
    currency than the booked one: ``(Decimal("15.49"), "USD")``; None otherwise."""
    for found in IN_TEXT.finditer(text.upper()):
        code = found["c1"] or found["c2"]
        if code in ISO_CODES and code != booked.upper():
            return _plain_amount(found["a1"] or found["a2"]), code
    return None


def billed_abroad(t: Transaction) -> bool:
    """Whether a charge's booked amount moves with an exchange rate: it names an original
    currency, or its text names a foreign amount, a rate or a foreign-transaction marker."""
    text = f"{t.description} {t.payee}"
    return bool((t.original_currency and t.original_currency != t.currency)
                or foreign_in_text(text, t.currency) or RATE.search(text)
                or FOREIGN.search(text))


def merchant_name(text: str) -> str:
    """A payee as one name across months: upper case, without the foreign amount and the
    rate a bank writes into the text of a charge billed abroad (they change every month)."""
    text = RATE.sub(" ", text.upper())
    text = IN_TEXT.sub(lambda m: " " if (m["c1"] or m["c2"]) in ISO_CODES else m[0], text)
    return " ".join(text.split())


def _decimal(value: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:
        return Decimal("NaN")


def _account_tail(account: str) -> str:
    """Masked and full numbers of one account agree on their last four digits."""
    digits = re.sub(r"\D", "", account)
    return digits[-4:] if len(digits) >= 4 else account.strip().upper()


def dedupe_key(t: Transaction) -> str:
    """The identity of a transaction across overlapping statements of one account.

    The bank's FITID when it gives one; else the date, the amount and the normalised
    description. Two equal coffees on one day share this key: use ``occurrence_keys`` for a
    whole statement so they stay two.
    """
    account = _account_tail(t.account)
    if t.fitid:
        return f"{account}|fitid|{t.fitid}"
    amount = _decimal(t.amount).normalize()
    return f"{account}|{t.occurred or t.posted}|{amount}|{normalise_description(t.description)}"


def occurrence_keys(transactions: Iterable[Transaction]) -> list[str]:
    """``dedupe_key`` numbered by repeat within one statement ("...#2" for the second).

    Two statements that overlap both list the same repeats, so their keys agree, while two
    identical purchases in one statement stay distinct.
    """
    seen: Counter[str] = Counter()
    keys = []
    for t in transactions:
        key = dedupe_key(t)
        seen[key] += 1
        keys.append(f"{key}#{seen[key]}")
    return keys


def same_transaction(a: Transaction, b: Transaction) -> bool:
    """Whether two records are one transaction seen in two overlapping statements."""
    if _account_tail(a.account) != _account_tail(b.account):
        return False
    if a.fitid and b.fitid:
        return a.fitid == b.fitid
    return dedupe_key(a.model_copy(update={"fitid": ""})) == dedupe_key(
        b.model_copy(update={"fitid": ""}))


def pairs_card_payment(bank: Transaction, card: Transaction, days: int = PAIR_DAYS) -> bool:
    """Whether a bank debit and a card credit are one card bill seen from both sides.

    Both must be card payments (or the bank side an OFX PAYMENT), of the same absolute
    amount, money out of the bank and into the card, dated within ``days`` of each other.
    Spending counts the card's purchases, so the pair must be counted zero times, not twice.
    """
    bank_amount, card_amount = _decimal(bank.amount), _decimal(card.amount)
    if not (bank_amount < 0 < card_amount and -bank_amount == card_amount):
        return False
    if bank.kind != "card_payment" and bank.bank_type.upper() != "PAYMENT":
        return False
    if card.kind != "card_payment":
        return False
    try:
        gap = abs(date.fromisoformat(bank.posted[:10]) - date.fromisoformat(card.posted[:10]))
    except ValueError:
        return False
    return gap.days <= days


class MappingStore(Protocol):
    """Where CSV layouts are remembered per header (``LifeStore`` is one)."""

    def mapping(self, header: str) -> dict[str, Any] | None: ...

    def save_mapping(self, header: str, mapping: dict[str, Any]) -> None: ...


def parse_ofx(path: Path) -> Iterator[Transaction | Problem]:
    """OFX 1.x/2.x and QFX statements (``sources.ofx.parse_ofx``)."""
    from smallhold.apps.life.sources.ofx import parse_ofx as parse

    return parse(path)


def parse_csv(path: Path, mapping: CsvMapping | None = None, *,
              currency: str = "") -> Iterator[Transaction | Problem]:
    """A bank or card CSV (``sources.csvbank.parse_csv``)."""
    from smallhold.apps.life.sources.csvbank import parse_csv as parse

    return parse(path, mapping, currency=currency)


def parse_csv_remembering(path: Path, store: MappingStore,
                          currency: str = "") -> Iterator[Transaction | Problem]:
    """A bank or card CSV with its layout's saved mapping, saving a guessed one first.

    The key is the header's columns (``csvbank.header_key``), so every export of one bank
    reuses the mapping the person may have corrected (``store.save_mapping``). The saved
    mapping holds what was inferred from the rows too (date format, decimal comma, sign),
    so a later export whose dates are all ambiguous (every day <= 12) reads the same way.

    ``currency`` is the person's stated one (``Values.person.currency``), for layouts with
    no currency column (most US exports); it is not saved in the mapping, which describes
    the bank's layout, not the person. When the layout has none and nothing is stated, the
    rows keep an empty currency and a ``Problem`` on the header says so in the ingest
    report: a currency is never guessed (a "$" in an amount is also a Canadian dollar).
    """
    from smallhold.apps.life.sources import csvbank

    def saved(columns: list[str]) -> CsvMapping | None:
        found = store.mapping(csvbank.header_key(columns))
        return csvbank.CsvMapping.model_validate(found) if found else None

    header, mapping = csvbank.sniff_csv(path, saved)
    key = csvbank.header_key(header)
    if store.mapping(key) is None:
        store.save_mapping(key, mapping.model_dump(mode="json"))
    rows = csvbank.parse_csv(path, mapping, currency=currency)
    if mapping.currency_column or mapping.currency or currency:
        return rows
    note = Problem(file=path.name, location="header", reason=(
        "no currency column and no stated currency: the amounts are kept without one "
        "(never guessed). Set currency under [person] in your priorities file, then "
        f"`smallhold life forget {path.name}` and ingest it again."))
    return itertools.chain([note], rows)


__all__ = ["ISO_CODES", "MappingStore", "bank_kind", "billed_abroad", "card_kind", "dedupe_key",
           "foreign_in_text", "merchant_name", "normalise_description",
           "occurrence_keys", "pairs_card_payment", "parse_csv", "parse_csv_remembering",
           "parse_ofx", "same_transaction"]
