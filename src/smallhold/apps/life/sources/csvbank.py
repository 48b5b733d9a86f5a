"""Bank and card CSV exports: every bank has its own layout, so the columns are *mapped*.

A ``CsvMapping`` says which column is what; ``guess_mapping`` proposes one from the header's
names (English and German bank vocabulary), and the ingest layer saves it per header so the
person can correct a bank's layout once. What the header cannot say (the date format, a
decimal comma, whether purchases are negative) is inferred from the rows and stored in the
mapping too. Exports are small (thousands of rows), so a file is read whole: inferring
``MM/DD`` against ``DD/MM`` needs every date anyway.

Currency: a column, or one the header names ("Betrag (EUR)"), or else the person's stated
currency (``Values.person.currency``, passed in as ``currency``). US exports usually have no
currency column at all; with nothing stated either, the rows keep an empty currency and the
ingest door says so: a currency is never guessed. A charge billed in another currency keeps
the merchant's own price (``original_amount``/``original_currency``) from an "Original
Amount" / "Ursprünglicher Betrag" column, so a price check is not fooled by the rate.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from smallhold.apps.life.errors import SourceError
from smallhold.apps.life.models import Problem, Source, Transaction
from smallhold.apps.life.sources.money import CARD_PAYMENT, bank_kind, card_kind


class CsvMapping(BaseModel):
    """Which column is what in one bank's CSV layout; "" means the layout has none."""

    model_config = ConfigDict(extra="forbid")

    date: str  # the transaction's own date (Transaction Date, Belegdatum), else the only date
    posted: str = ""  # the posting date (Post Date, Buchungstag, Wertstellung, Valuta)
    amount: str = ""  # one signed amount column ...
    debit: str = ""  # ... or a pair: money out
    credit: str = ""  # and money in
    description: list[str] = []  # joined with " " (Description, Verwendungszweck, Memo)
    payee: str = ""
    category: str = ""
    type: str = ""  # the bank's own type (Sale, Return, Payment, Buchungstext)
    currency_column: str = ""
    currency: str = ""  # fixed currency when there is no column ("Betrag (EUR)" gives EUR)
    original_amount: str = ""  # a foreign charge's own price ("12,99 USD", or a number ...)
    original_currency: str = ""  # ... with its currency in a column of its own
    account: str = ""  # fixed account id; "" = a card/IBAN number in the preamble, or the file
    date_format: str = ""  # strptime format; "" = inferred from the rows
    decimal_comma: bool | None = None  # None = inferred from the rows
    purchases_negative: bool | None = None  # sign convention; None = inferred from the rows
    statement: Literal["bank", "card", ""] = ""  # "" = inferred (card columns, preamble)


def _norm(name: str) -> str:
    name = name.replace("\ufeff", "").strip().strip('"').strip().lower()
    name = re.sub(r"\(.*?\)|\[.*?\]", "", name)
    name = re.sub(r"\s*/\s*", "/", name)
    name = re.sub(r"\s+(in\s+)?(eur|usd|gbp|chf|€|\$)$", "", name.strip())
    return " ".join(name.split())


_NAMES: dict[str, list[str]] = {  # per role, most telling name first
    "occurred": ["transaction date", "trans. date", "trans date", "transaction_date",
                 "purchase date", "belegdatum", "umsatzdatum", "kaufdatum",
                 "transaktionsdatum"],
    "posted": ["post date", "posting date", "posted date", "post_date", "booking date",
               "value date", "settlement date", "buchungstag", "buchungsdatum",
               "wertstellung", "wertstellungsdatum", "valuta", "valutadatum"],
    "date": ["date", "datum", "day", "tag"],
    "amount": ["amount", "transaction amount", "betrag", "umsatz", "buchungsbetrag",
               "umsatzbetrag", "summe", "value"],
    "debit": ["debit", "debit amount", "withdrawal", "withdrawals", "money out", "paid out",
              "soll", "ausgang", "belastung"],
    "credit": ["credit", "credit amount", "deposit", "deposits", "money in", "paid in",
               "haben", "eingang"],
    "description": ["description", "transaction description", "beschreibung",
                    "verwendungszweck", "memo", "text", "buchungsinformation"],
    "payee": ["payee", "merchant", "merchant name", "name", "counterparty", "empfänger",
              "zahlungsempfänger", "auftraggeber/begünstigter", "auftraggeber/empfänger",
              "begünstigter/zahlungspflichtiger", "beguenstigter/zahlungspflichtiger",
              "zahlungspflichtige*r", "zahlungsempfänger*in", "name zahlungsbeteiligter"],
    "category": ["category", "categories", "kategorie"],
    "type": ["type", "transaction type", "umsatzart", "buchungstext", "vorgang", "details"],
    "currency": ["currency", "währung", "waehrung"],
    "original_amount": ["original amount", "ursprünglicher betrag", "urspruenglicher betrag",
                        "originalbetrag", "foreign amount", "foreign currency amount",
                        "amount in original currency", "betrag in fremdwährung",
                        "fremdwährungsbetrag", "betrag ursprung"],
    "original_currency": ["original currency", "foreign currency", "originalwährung",
                          "ursprüngliche währung", "fremdwährung"],
}
_CARD_HINT = re.compile(r"kreditkarte|credit ?card|\bcard\b|karte", re.IGNORECASE)
_ACCOUNT_HINT = re.compile(r"\d{4}[ *xX•]{4,}\d{4}|\b[A-Z]{2}\d{2}(?: ?[0-9A-Z]{4}){3,7}")
_FORMATS = ["%Y-%m-%d", "%d.%m.%Y", "%d.%m.%y", "%m/%d/%Y", "%d/%m/%Y", "%m/%d/%y",
            "%d/%m/%y", "%Y/%m/%d", "%d-%m-%Y", "%m-%d-%Y", "%Y%m%d", "%d %b %Y", "%d %B %Y",
            "%b %d, %Y", "%d-%b-%Y", "%d-%b-%y"]


def header_key(columns: list[str]) -> str:
    """The key a bank's layout is saved under: its column names, in order."""
    return "|".join(c.replace("\ufeff", "").strip() for c in columns).rstrip("|")


def guess_mapping(header: list[str]) -> CsvMapping | None:
    """A mapping from the header's names, or None when it has no date or no amount."""
    found: dict[str, list[str]] = {}
    for column in header:
        for role, names in _NAMES.items():
            if _norm(column) in names:
                found.setdefault(role, []).append(column)
    first = {role: min(columns, key=lambda c, r=role: _NAMES[r].index(_norm(c)))  # type: ignore[misc]
             for role, columns in found.items()}
    when = first.get("occurred") or first.get("date") or first.get("posted")
    has_amount = "amount" in first or ("debit" in first and "credit" in first)
    if not when or not has_amount:
        return None
    posted = first.get("posted", "") if when != first.get("posted") else ""
    currency = next((m.group(1).upper() for c in header
                     if (m := re.search(r"\((EUR|USD|GBP|CHF)\)", c, re.IGNORECASE))), "")
    card = "occurred" in first or any(_CARD_HINT.search(c) for c in header)
    return CsvMapping(
        date=when, posted=posted, amount=first.get("amount", ""),
        debit="" if "amount" in first else first["debit"],
        credit="" if "amount" in first else first["credit"],
        description=found.get("description", []), payee=first.get("payee", ""),
        category=first.get("category", ""), type=first.get("type", ""),
        currency_column=first.get("currency", ""), currency=currency,
        original_amount=first.get("original_amount", ""),
        original_currency=first.get("original_currency", ""),
        statement="card" if card else "")


def read_text(path: Path) -> str:
    """The file as text: a BOM's encoding, else UTF-8, else cp1252 (German banks' default)."""
    data = path.read_bytes()
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                          (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def sniff_delimiter(text: str) -> str:
    """The delimiter whose field count is the most consistent over the first lines."""
    lines = [line for line in text.splitlines()[:60] if line.strip()]
    best, score = ",", (0, 0)
    for delimiter in (",", ";", "\t", "|"):
        counts = Counter(len(row) for row in csv.reader(lines, delimiter=delimiter)
                         if len(row) > 1)
        if counts:
            width, freq = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
            if (freq, width) > score:
                best, score = delimiter, (freq, width)
    return best


def _rows(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    line = 1
    for row in reader:
        yield line, row
        line = reader.line_num + 1


def parse_amount(raw: str, decimal_comma: bool) -> Decimal:
    """"-1.234,56", "(12.50)", "12,50-", "$1,234.56", "12.50 CR" as a Decimal."""
    text = raw.strip().replace("\u00a0", "").replace(" ", "")
    negative = False
    if text.upper().endswith(("CR", "DR")):
        negative, text = text.upper().endswith("DR"), text[:-2]
    if text.startswith("(") and text.endswith(")"):
        negative, text = True, text[1:-1]
    if text.endswith("-"):
        negative, text = True, text[:-1]
    text = re.sub(r"[^\d,.'+-]", "", text)
    text = (text.replace(".", "").replace("'", "").replace(",", ".") if decimal_comma
            else text.replace(",", "").replace("'", ""))
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{raw!r} is not an amount") from None
    return -value if negative else value


_CODE = re.compile(r"\b([A-Z]{3})\b")


def parse_original(raw: str, currency_cell: str,
                   decimal_comma: bool) -> tuple[Decimal, str] | None:
    """A foreign charge's own price and currency: "12,99 USD", "USD 12.99", "-9.99" (with
    the currency from its own column); None when the cell holds no amount. The number's
    own separators win over the file's convention (a German export may quote "12.99 USD")."""
    text = raw.strip()
    code = _CODE.search(text.upper())
    number = re.sub(r"[A-Za-z$€£¥\s]", "", text)
    if not re.search(r"\d", number):
        return None
    comma = decimal_comma
    if "," in number and "." in number:
        comma = number.rfind(",") > number.rfind(".")
    elif re.search(r"[.,]\d{2}-?$", number):
        comma = "," in number[-4:]
    try:
        value = parse_amount(number, comma)
    except ValueError:
        return None
    return value, (code.group(1) if code else currency_cell.strip().upper())


def parse_date(raw: str, fmt: str) -> date:
    text = raw.strip()
    if re.match(r"\d{4}-\d\d-\d\d[T ]", text):
        text = text[:10]
    return datetime.strptime(text, fmt).date()


def _infer_format(values: list[str], dmy_first: bool) -> str:
    order = list(_FORMATS)
    if dmy_first:
        order.sort(key=lambda f: 0 if f.startswith("%d") else 1)
    best, hits = _FORMATS[0], -1
    for fmt in order:
        n = 0
        for value in values:
            try:
                parse_date(value, fmt)
                n += 1
            except ValueError:
                pass
        if n > hits:
            best, hits = fmt, n
    return best


class _Table:
    """The header row, the rows after it and the resolved mapping of one CSV file."""

    def __init__(self, path: Path, mapping: CsvMapping | None,
                 lookup: Callable[[list[str]], CsvMapping | None] | None) -> None:
        self.path = path
        text = read_text(path)
        self.delimiter = sniff_delimiter(text)
        self.preamble: list[list[str]] = []  # rows before the header (first 30)
        rows = _rows(text, self.delimiter)
        found: CsvMapping | None = None
        self.header: list[str] = []
        for _line, row in rows:
            columns = [c.replace("\ufeff", "").strip() for c in row]
            if mapping is not None:
                found = mapping if mapping.date in columns else None
            else:
                found = (lookup(columns) if lookup else None) or guess_mapping(columns)
            if found:
                self.header = columns
                break
            if len(self.preamble) < 30:
                self.preamble.append(columns)
        if found is None:
            raise SourceError(self._no_columns(mapping))
        self.body = [(line, row) for line, row in rows if any(c.strip() for c in row)]
        self.mapping = self._resolve(found)

    def _no_columns(self, mapping: CsvMapping | None) -> str:
        seen = max(self.preamble, key=lambda r: sum(bool(c) for c in r), default=[])
        columns = ", ".join(repr(c) for c in seen if c) or "none"
        if mapping:
            return (f"{self.path.name}: no row has the mapping's date column "
                    f"{mapping.date!r}; the columns seen were {columns}.")
        return (f"{self.path.name}: no row names a date and an amount column; the columns "
                f"seen were {columns}. Give a CsvMapping naming them, e.g. "
                "CsvMapping(date='Date', amount='Amount') or debit=/credit= for two "
                "amount columns (saved per bank layout by `life ingest`).")

    def cell(self, row: list[str], column: str) -> str:
        if not column or column not in self.header:
            return ""
        index = self.header.index(column)
        return row[index].strip() if index < len(row) else ""

    def _resolve(self, m: CsvMapping) -> CsvMapping:
        update: dict[str, object] = {}
        money = [self.cell(r, c) for _, r in self.body for c in (m.amount, m.debit, m.credit)]
        money = [v for v in money if v]
        if m.decimal_comma is None:
            commas = sum(bool(re.search(r",\d{1,2}-?$", v)) for v in money)
            dots = sum(bool(re.search(r"\.\d{1,2}-?$", v)) for v in money)
            update["decimal_comma"] = commas > dots or (commas == dots and
                                                       self.delimiter == ";")
        if not m.date_format:
            dates = [self.cell(r, c) for _, r in self.body for c in (m.date, m.posted)]
            dmy = bool(update.get("decimal_comma", m.decimal_comma)) or self.delimiter == ";"
            update["date_format"] = _infer_format([d for d in dates if d], dmy)
        if not m.statement:
            card = any(_CARD_HINT.search(" ".join(p)) for p in self.preamble)
            update["statement"] = "card" if card else "bank"
        if not m.account:
            hint = next((h.group(0) for p in self.preamble
                         if (h := _ACCOUNT_HINT.search(" ".join(p)))), "")
            update["account"] = hint
        resolved = m.model_copy(update=update)
        if resolved.purchases_negative is None:
            resolved.purchases_negative = self._purchases_negative(resolved)
        return resolved

    def _purchases_negative(self, m: CsvMapping) -> bool:
        """A card payment's sign gives it away (credit: purchases are negative); else the
        majority of rows are spending."""
        if not m.amount:
            return True
        signs = Counter[bool]()
        for _, row in self.body:
            try:
                value = parse_amount(self.cell(row, m.amount), bool(m.decimal_comma))
            except ValueError:
                continue
            text = " ".join([self.cell(row, c) for c in m.description] + [
                self.cell(row, m.payee), self.cell(row, m.type)])
            if CARD_PAYMENT.search(text) or self.cell(row, m.type).lower() == "payment":
                return value > 0 if m.statement == "card" else value < 0  # a bill: in vs out
            signs[value < 0] += 1
        return signs[True] >= signs[False]


def sniff_csv(path: Path, lookup: Callable[[list[str]], CsvMapping | None] | None = None,
              ) -> tuple[list[str], CsvMapping]:
    """The header and the resolved mapping (``lookup`` may supply a saved one per header)."""
    table = _Table(path, None, lookup)
    return table.header, table.mapping


def parse_csv(path: Path, mapping: CsvMapping | None = None, *,
              currency: str = "") -> Iterator[Transaction | Problem]:
    """One ``Transaction`` per data row, a ``Problem`` per row that has no date or amount.

    ``currency`` is the person's stated one, for rows the file gives none (see above)."""
    table = _Table(path, mapping, None)
    m = table.mapping
    kind: Literal["bank", "card"] = "card" if m.statement == "card" else "bank"
    account = m.account or path.stem
    for line, row in table.body:
        where = f"line {line}"
        try:
            when = parse_date(table.cell(row, m.date), m.date_format)
            posted_raw = table.cell(row, m.posted)
            posted = parse_date(posted_raw, m.date_format) if posted_raw else when
            if m.amount:
                amount = parse_amount(table.cell(row, m.amount), bool(m.decimal_comma))
                amount = amount if m.purchases_negative is not False else -amount
            else:
                out, into = table.cell(row, m.debit), table.cell(row, m.credit)
                amount = (parse_amount(into, bool(m.decimal_comma)) if into else Decimal(0)) \
                    - (abs(parse_amount(out, bool(m.decimal_comma))) if out else Decimal(0))
        except ValueError as err:
            yield Problem(file=path.name, location=where, reason=f"unreadable row: {err}")
            continue
        description = " ".join(v for c in m.description if (v := table.cell(row, c)))
        payee, bank_type = table.cell(row, m.payee), table.cell(row, m.type)
        text = f"{description} {payee}"
        booked = (table.cell(row, m.currency_column) or m.currency or currency).upper()
        original = parse_original(table.cell(row, m.original_amount),
                                  table.cell(row, m.original_currency), bool(m.decimal_comma))
        if original is not None and (original[1] == booked or original[0] == 0):
            original = None  # the same currency again, or an empty "0,00": nothing foreign
        yield Transaction(
            account=account, posted=posted.isoformat(),
            occurred=when.isoformat() if m.posted else "", amount=str(amount),
            currency=booked,
            original_amount=str(abs(original[0]).copy_sign(amount)) if original else "",
            original_currency=original[1] if original else "",
            description=description or payee, payee=payee,
            category=table.cell(row, m.category),
            kind=(card_kind if kind == "card" else bank_kind)(amount, bank_type, text),
            bank_type=bank_type, source=Source(file=path.name, location=where, kind=kind))


__all__ = ["CsvMapping", "guess_mapping", "header_key", "parse_amount", "parse_csv",
           "parse_original", "read_text", "sniff_csv", "sniff_delimiter"]
