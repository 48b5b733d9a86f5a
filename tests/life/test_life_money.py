"""life's money sources: OFX/QFX and bank/card CSVs against the personas' ground truth,
plus the inputs real exports bring (wrong charsets, other layouts, bad rows, cut files)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from life_data import SEEDS, Personas

from smallhold.apps.life.errors import SourceError
from smallhold.apps.life.models import Problem, Source, Transaction
from smallhold.apps.life.sources.csvbank import CsvMapping, guess_mapping, parse_amount
from smallhold.apps.life.sources.money import (
    occurrence_keys,
    pairs_card_payment,
    parse_csv,
    parse_csv_remembering,
    parse_ofx,
    same_transaction,
)

SPENDING = ("purchase", "refund", "withdrawal", "fee")


def split(items: list[Transaction | Problem]) -> tuple[list[Transaction], list[Problem]]:
    return ([i for i in items if isinstance(i, Transaction)],
            [i for i in items if isinstance(i, Problem)])


@pytest.mark.parametrize("seed", SEEDS)
def test_persona_money_matches_ground_truth(life_personas: Personas, seed: int) -> None:
    persona = life_personas.get(seed)
    bank, bank_problems = split(list(parse_ofx(persona.folder / "bank.ofx")))
    card, card_problems = split(list(parse_csv(persona.folder / "card.csv")))
    counts = persona.truth["counts"]
    assert not bank_problems and not card_problems
    assert len(card) == counts["card_rows"]
    assert float(sum(Decimal(t.amount) for t in card)) == pytest.approx(counts["card_total"])
    assert len(bank) == counts["bank_transactions"]
    assert float(sum(Decimal(t.amount) for t in bank)) == pytest.approx(counts["bank_total"])
    # the README's rules, recomputed from kinds alone: this is what proves the kind mapping
    income: dict[str, Decimal] = defaultdict(Decimal)
    spending: dict[str, Decimal] = defaultdict(Decimal)
    for t in bank + card:
        month = (t.occurred or t.posted)[:7]
        if t.kind == "income":
            income[month] += Decimal(t.amount)
        elif t.kind in SPENDING:
            spending[month] -= Decimal(t.amount)
    for row in persona.truth["months"]:
        month = row["month"]
        assert float(income[month]) == pytest.approx(row["income"]), month
        assert float(spending[month]) == pytest.approx(row["spending"]), month
        rate = (income[month] - spending[month]) / income[month]
        assert float(rate) == pytest.approx(row["savings_rate"], abs=6e-5), month
    # every card bill is seen from both sides, and pairs once
    bank_payments = [t for t in bank if t.kind == "card_payment"]
    card_payments = [t for t in card if t.kind == "card_payment"]
    assert bank_payments and len(bank_payments) == len(card_payments)
    for b in bank_payments:
        assert sum(pairs_card_payment(b, c) for c in card_payments) == 1
    assert {t.currency for t in bank} == {persona.truth["persona"]["currency"]}
    assert all(t.source.location == f"STMTTRN {t.fitid}" for t in bank)


def test_german_card_csv_dialect(life_personas: Personas) -> None:
    persona = life_personas.get(5)
    assert persona.truth["persona"]["card_csv_dialect"] == "de"
    card, _ = split(list(parse_csv(persona.folder / "card.csv")))
    first = card[0]
    assert first.currency == "EUR" and first.source.kind == "card"
    assert first.account.endswith("4821") and first.source.location == "line 9"
    assert first.occurred < first.posted or first.occurred == first.posted
    assert any(t.kind == "refund" for t in card)
    big = [t for t in card if t.kind == "card_payment"]
    assert all("." in t.amount and "," not in t.amount for t in big)


OFX2 = """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<?OFX OFXHEADER="200" VERSION="220" SECURITY="NONE" OLDFILEUID="NONE" NEWFILEUID="NONE"?>
<OFX><CREDITCARDMSGSRSV1><CCSTMTTRNRS><TRNUID>1</TRNUID>
<STATUS><CODE>0</CODE><SEVERITY>INFO</SEVERITY></STATUS>
<CCSTMTRS><CURDEF>USD</CURDEF><CCACCTFROM><ACCTID>XXXX1234</ACCTID></CCACCTFROM>
<BANKTRANLIST><DTSTART>20240101</DTSTART><DTEND>20240131</DTEND>
<STMTTRN><TRNTYPE>DEBIT</TRNTYPE><DTPOSTED>20240105230000.000[-5:EST]</DTPOSTED>
<DTUSER>20240104</DTUSER><TRNAMT>-12.50</TRNAMT><FITID>A1</FITID>
<NAME>CAFÉ &amp; BAR</NAME><MEMO>Lunch with a very long memo text</MEMO></STMTTRN>
<STMTTRN><TRNTYPE>CREDIT</TRNTYPE><DTPOSTED>20240110</DTPOSTED><TRNAMT>99.00</TRNAMT>
<FITID>A2</FITID><NAME>PAYMENT - THANK YOU</NAME></STMTTRN>
<STMTTRN><TRNTYPE>CREDIT</TRNTYPE><DTPOSTED>20240111</DTPOSTED><TRNAMT>5.00</TRNAMT>
<FITID>A3</FITID><NAME>SHOP RETURN</NAME></STMTTRN>
<STMTTRN><TRNTYPE>NOSUCHTYPE</TRNTYPE><DTPOSTED>20240112</DTPOSTED><TRNAMT>1</TRNAMT>
<FITID>A4</FITID></STMTTRN>
</BANKTRANLIST></CCSTMTRS></CCSTMTTRNRS></CREDITCARDMSGSRSV1></OFX>
"""


def test_ofx2_xml_card_statement(tmp_path: Path) -> None:
    path = tmp_path / "card.qfx"
    path.write_text(OFX2, encoding="utf-8")
    txs, problems = split(list(parse_ofx(path)))
    assert [t.kind for t in txs] == ["purchase", "card_payment", "refund"]
    first = txs[0]
    # the bank's own date, not UTC's (23:00 EST is the next day in UTC)
    assert (first.posted, first.occurred) == ("2024-01-05", "2024-01-04")
    assert first.description.startswith("CAFÉ & BAR") and first.source.kind == "card"
    assert first.account == "XXXX1234" and first.currency == "USD"
    assert [p.location for p in problems] == ["STMTTRN A4"]


def _sgml(charset: str, name: bytes, encoding: str = "USASCII") -> bytes:
    head = (f"OFXHEADER:100\r\nDATA:OFXSGML\r\nVERSION:102\r\nSECURITY:NONE\r\n"
            f"ENCODING:{encoding}\r\nCHARSET:{charset}\r\nCOMPRESSION:NONE\r\n"
            "OLDFILEUID:NONE\r\nNEWFILEUID:NONE\r\n\r\n").encode()
    body = (b"<OFX><BANKMSGSRSV1><STMTTRNRS><TRNUID>1<STATUS><CODE>0<SEVERITY>INFO</STATUS>"
            b"<STMTRS><CURDEF>EUR<BANKACCTFROM><BANKID>1<ACCTID>DE99<ACCTTYPE>CHECKING"
            b"</BANKACCTFROM><BANKTRANLIST><DTSTART>20240101<DTEND>20240131"
            b"<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20240102<TRNAMT>-3,50<FITID>1<NAME>" + name +
            b"</STMTTRN><STMTTRN><TRNTYPE>DIRECTDEP<DTPOSTED>20240103<TRNAMT>100<FITID>2"
            b"<NAME>GEHALT</STMTTRN></BANKTRANLIST></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>")
    return head + body


@pytest.mark.parametrize(("charset", "name", "expected", "problem"), [
    ("1252", "Bäckerei".encode("cp1252"), "Bäckerei", None),
    ("NONE", "Bäckerei".encode("cp1252"), "B\ufffdckerei", "cp1252"),  # 0xe4 alone isn't UTF-8
    ("1252", "Bäckerei".encode(), "Bäckerei", "UTF-8"),  # declared 1252, bytes UTF-8
    ("KOI-9", "Bäckerei".encode(), "Bäckerei", "UTF-8"),  # unknown charset name
])
def test_ofx_wrong_charset_never_crashes(tmp_path: Path, charset: str, name: bytes,
                                         expected: str, problem: str | None) -> None:
    path = tmp_path / "bank.ofx"
    path.write_bytes(_sgml(charset, name))
    txs, problems = split(list(parse_ofx(path)))
    assert len(txs) == 2 and txs[0].amount == "-3.50" and txs[1].kind == "income"
    if problem is None:
        assert txs[0].description == expected and not problems
    else:
        assert [p.location for p in problems] == ["header"] and problem in problems[0].reason
        assert txs[0].description.replace("ä", "\ufffd") == expected.replace("ä", "\ufffd")


def test_ofx_salvage_and_cut_files(life_personas: Personas, tmp_path: Path) -> None:
    data = (life_personas.get(0).folder / "bank.ofx").read_bytes()
    broken = tmp_path / "broken.ofx"  # text after a closing tag: ofxtools refuses the file
    broken.write_bytes(data.replace(b"</STMTTRN>", b"</STMTTRN> stray text", 1))
    txs, problems = split(list(parse_ofx(broken)))
    assert len(txs) == 40 and [p.location for p in problems] == ["file"]
    cut = tmp_path / "cut.ofx"
    cut.write_bytes(data[: len(data) // 2])
    txs, problems = split(list(parse_ofx(cut)))
    assert 15 <= len(txs) < 40 and problems
    assert all(p.location.startswith(("line", "file", "STMTTRN")) for p in problems)
    not_ofx = tmp_path / "x.ofx"
    not_ofx.write_text("Date,Amount\n", encoding="utf-8")
    with pytest.raises(SourceError):
        list(parse_ofx(not_ofx))


US_BANK = """Details,Posting Date,Description,Amount,Type,Balance,Check or Slip #,Extra
DEBIT,01/15/2024,"COFFEE, INC",-4.50,DEBIT_CARD,100.00,,x
CREDIT,01/16/2024,ACME PAYROLL PPD,"2,000.00",ACH_CREDIT,2100.00,,y
DEBIT,13/45/2024,BROKEN DATE,-1.00,DEBIT_CARD,0,,z
DEBIT,01/17/2024,CHASE CREDIT CRD AUTOPAY,-300.00,ACH_DEBIT,1800.00,,
DEBIT,01/18/2024,ATM WITHDRAWAL,-40.00,ATM,1760.00,,
"""


def test_csv_other_layout_ignores_unknown_columns_and_reports_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "chase.csv"
    path.write_text(US_BANK, encoding="utf-8")
    txs, problems = split(list(parse_csv(path)))
    assert [t.kind for t in txs] == ["purchase", "income", "card_payment", "withdrawal"]
    assert txs[0].description == "COFFEE, INC" and txs[1].amount == "2000.00"
    assert txs[0].bank_type == "DEBIT_CARD" and txs[0].posted == "2024-01-15"
    assert [p.location for p in problems] == ["line 4"] and "13/45/2024" in problems[0].reason


def test_csv_debit_credit_pair_german_bank(tmp_path: Path) -> None:
    path = tmp_path / "giro.csv"
    text = ("Kontonummer;DE12 3456 7890 1234 5678 90\n\n"
            "Buchungstag;Valuta;Auftraggeber / Begünstigter;Verwendungszweck;Soll;Haben;\n"
            "02.01.2024;02.01.2024;Arbeitgeber GmbH;GEHALT JANUAR;;2.500,00;\n"
            "03.01.2024;03.01.2024;Supermarkt;Einkauf;12,34;;\n")
    path.write_bytes(text.encode("cp1252"))
    txs, problems = split(list(parse_csv(path)))
    assert not problems
    assert [(t.amount, t.kind) for t in txs] == [("2500.00", "income"), ("-12.34", "purchase")]
    assert txs[0].payee == "Arbeitgeber GmbH" and txs[0].account.startswith("DE12")


def test_csv_without_usable_columns_names_them(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("Foo,Bar,Baz\n1,2,3\n", encoding="utf-8")
    with pytest.raises(SourceError) as caught:
        list(parse_csv(path))
    message = str(caught.value)
    assert "'Foo', 'Bar', 'Baz'" in message and "CsvMapping" in message
    mapping = CsvMapping(date="Foo", amount="Baz", description=["Bar"], date_format="%d",
                         purchases_negative=True)
    txs, _ = split(list(parse_csv(path, mapping)))
    assert txs[0].amount == "3" and txs[0].description == "2"


def test_guess_mapping_english_and_german() -> None:
    us = guess_mapping(["Transaction Date", "Post Date", "Description", "Category", "Type",
                        "Amount", "Memo"])
    assert us is not None and (us.date, us.posted, us.amount) == ("Transaction Date",
                                                                  "Post Date", "Amount")
    assert us.description == ["Description", "Memo"] and us.statement == "card"
    de = guess_mapping(["Umsatz abgerechnet", "Wertstellung", "Belegdatum", "Beschreibung",
                        "Betrag (EUR)", "Ursprünglicher Betrag", ""])
    assert de is not None and (de.date, de.posted, de.amount, de.currency) == (
        "Belegdatum", "Wertstellung", "Betrag (EUR)", "EUR")
    assert guess_mapping(["Name", "Notes"]) is None


def test_parse_amount_forms() -> None:
    assert parse_amount("-1.234,56", True) == Decimal("-1234.56")
    assert parse_amount("(12.50)", False) == Decimal("-12.50")
    assert parse_amount("12,50-", True) == Decimal("-12.50")
    assert parse_amount("$1,234.56", False) == Decimal("1234.56")
    assert parse_amount("12.50 CR", False) == Decimal("12.50")
    with pytest.raises(ValueError):
        parse_amount("n/a", False)


def test_positive_purchase_convention_is_inferred(tmp_path: Path) -> None:
    path = tmp_path / "amex.csv"  # Amex-style: charges positive, the payment negative
    path.write_text("Date,Description,Card Member,Account #,Amount\n"
                    "01/02/2024,BOOKS,J DOE,-71004,20.00\n"
                    "01/05/2024,ONLINE PAYMENT - THANK YOU,J DOE,-71004,-20.00\n",
                    encoding="utf-8")
    txs, _ = split(list(parse_csv(path)))
    assert [(t.amount, t.kind) for t in txs] == [("-20.00", "purchase"),
                                                ("20.00", "card_payment")]


class _Store:
    def __init__(self) -> None:
        self.saved: dict[str, dict[str, Any]] = {}

    def mapping(self, header: str) -> dict[str, Any] | None:
        return self.saved.get(header)

    def save_mapping(self, header: str, mapping: dict[str, Any]) -> None:
        self.saved[header] = mapping


def test_mapping_is_saved_per_header_and_reused(tmp_path: Path) -> None:
    store = _Store()
    path = tmp_path / "a.csv"
    path.write_text("Date,Description,Amount\n13/01/2024,X,-1.00\n", encoding="utf-8")
    list(parse_csv_remembering(path, store))
    [(key, saved)] = store.saved.items()
    assert key == "Date|Description|Amount" and saved["date_format"] == "%d/%m/%Y"
    ambiguous = tmp_path / "b.csv"  # every day <= 12: the saved format decides
    ambiguous.write_text("Date,Description,Amount\n02/03/2024,Y,-2.00\n", encoding="utf-8")
    [t] = list(parse_csv_remembering(ambiguous, store, "EUR"))  # the stated currency
    assert isinstance(t, Transaction) and t.posted == "2024-03-02" and t.currency == "EUR"


def _tx(**kw: Any) -> Transaction:
    base: dict[str, Any] = {"account": "4921********4821", "posted": "2024-01-05",
                            "amount": "-12.50", "currency": "EUR", "description": "Corner Cafe",
                            "source": Source(file="a", location="line 1", kind="card")}
    return Transaction(**(base | kw))


def test_same_transaction_and_dedupe_keys() -> None:
    a = _tx()
    assert same_transaction(a, _tx(account="4821", description="CORNER  CAFE."))
    assert not same_transaction(a, _tx(amount="-12.51"))
    assert not same_transaction(a, _tx(account="9999"))
    assert same_transaction(_tx(fitid="1"), _tx(fitid="1", description="other"))
    assert not same_transaction(_tx(fitid="1"), _tx(fitid="2"))
    keys = occurrence_keys([a, _tx(), _tx(amount="-3")])
    assert len(set(keys)) == 3 and keys[1].endswith("#2")  # two equal coffees stay two
    assert occurrence_keys([a, _tx()]) == keys[:2]  # an overlapping statement agrees


def test_pairs_card_payment() -> None:
    bank = _tx(account="123", amount="-500.00", kind="card_payment", bank_type="PAYMENT",
               posted="2024-02-22")
    card = _tx(amount="500.00", kind="card_payment", posted="2024-02-23")
    assert pairs_card_payment(bank, card)
    assert not pairs_card_payment(bank, card.model_copy(update={"amount": "499.00"}))
    assert not pairs_card_payment(bank, card.model_copy(update={"posted": "2024-03-10"}))
    assert not pairs_card_payment(bank, card.model_copy(update={"kind": "refund"}))
    assert not pairs_card_payment(card, bank)
