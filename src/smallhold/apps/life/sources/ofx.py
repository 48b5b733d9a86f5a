"""OFX 1.x (SGML), OFX 2.x (XML) and QFX statements as ``Transaction`` records.

ofxtools (pinned 1.1.1) does the markup and the per-element validation. Two things happen
here rather than in ofxtools, on purpose:

- Decoding. ofxtools trusts the header's CHARSET and fails the whole file on one byte that
  does not fit, and it accepts only three charset names. Banks get this wrong often, so the
  declared charset is tried first, then UTF-8, then cp1252 with replacement, and a
  ``Problem`` says which was used.
- Granularity. ofxtools converts a whole response or nothing; here each STMTTRN is
  converted on its own, so one bad transaction costs itself. If the markup does not parse
  at all (a cut or hand-edited file), the STMTTRN blocks are cut out with a regex and each
  is parsed alone ("salvage").

``posted`` is the date as the bank wrote it (DTPOSTED's first eight digits, in the bank's own
offset): ofxtools turns it into UTC, which moves a late-evening posting to the next day.
"""

from __future__ import annotations

import codecs
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Literal

from ofxtools.models.base import Aggregate
from ofxtools.Parser import TreeBuilder

from smallhold.apps.life.errors import SourceError
from smallhold.apps.life.models import Problem, Source, Transaction, TransactionKind
from smallhold.apps.life.sources.money import CARD_PAYMENT, PAYROLL, card_kind

Statement = Literal["bank", "card"]
_CHARSETS = {"1252": "cp1252", "WINDOWS-1252": "cp1252", "ISO-8859-1": "latin-1",
             "8859-1": "latin-1", "LATIN1": "latin-1", "NONE": "ascii", "USASCII": "ascii",
             "UTF-8": "utf-8", "UTF8": "utf-8"}
_STATEMENTS: dict[str, tuple[str, str, Statement]] = {
    # statement aggregate: (account path, transaction path, source kind)
    "STMTRS": ("BANKACCTFROM/ACCTID", "BANKTRANLIST/STMTTRN", "bank"),
    "CCSTMTRS": ("CCACCTFROM/ACCTID", "BANKTRANLIST/STMTTRN", "card"),
    "INVSTMTRS": ("INVACCTFROM/ACCTID", "INVTRANLIST/INVBANKTRAN/STMTTRN", "bank"),
}
_SALVAGE = re.compile(
    r"<(?P<stmt>STMTRS|CCSTMTRS|INVSTMTRS)>|<CURDEF>(?P<cur>[^<\r\n]*)|"
    r"<ACCTID>(?P<acct>[^<\r\n]*)|<STMTTRN>(?P<trn>(?:(?!<STMTTRN>).)*?)</STMTTRN>",
    re.DOTALL | re.IGNORECASE)


def _declared_codec(head: str) -> str:
    if head.lstrip().startswith("<?xml"):
        found = re.search(r"encoding=[\"']([\w.-]+)", head[:300])
        return str(found.group(1)) if found else "utf-8"
    fields: dict[str, str] = dict(re.findall(r"^\s*([A-Z]+):\s*(\S+)", head.split("<", 1)[0],
                                             re.MULTILINE))
    if fields.get("ENCODING", "").upper() in ("UTF-8", "UNICODE"):
        return "utf-8"
    charset = fields.get("CHARSET", "NONE").upper()
    return _CHARSETS.get(charset, charset)


def decode(data: bytes, file: str) -> tuple[str, Problem | None]:
    """The statement as text, and a Problem when the declared charset did not fit."""
    data = data.removeprefix(codecs.BOM_UTF8)
    declared = _declared_codec(data[:2048].decode("ascii", "replace"))
    try:
        text = data.decode(declared)
    except (LookupError, UnicodeDecodeError):
        text = None
    ascii_only = data.isascii()
    try:
        utf8 = None if ascii_only else data.decode("utf-8")
    except UnicodeDecodeError:
        utf8 = None
    if text is not None and (utf8 is None or codecs.lookup(declared).name == "utf-8"):
        return text, None
    if utf8 is not None:
        reason = f"declared charset {declared!r} does not match the bytes; read as UTF-8"
        return utf8, Problem(file=file, location="header", reason=reason)
    reason = (f"declared charset {declared!r} does not match the bytes, nor does UTF-8; read "
              "as cp1252 with unreadable bytes replaced")
    return data.decode("cp1252", "replace"), Problem(file=file, location="header",
                                                     reason=reason)


def _tree(markup: str) -> ET.Element:
    builder = TreeBuilder()
    builder.feed(re.sub(r"<([A-Z0-9.]+)\s*/>", r"<\1></\1>", markup))
    root: ET.Element = builder.close()
    return root


def ofx_kind(trntype: str, amount: Decimal, text: str, statement: Statement) -> TransactionKind:
    """TRNTYPE to a kind. Only DIRECTDEP (or a payroll-like deposit) is income: a CREDIT is
    as often a refund or a transfer in, and counting it would flatter the savings rate."""
    t = trntype.upper()
    if t in ("FEE", "SRVCHG") or (t == "INT" and amount < 0):
        return "fee"
    if statement == "card":
        return card_kind(amount, "payment" if t == "PAYMENT" else t, text)
    if amount > 0:
        if t == "DIRECTDEP" or (t in ("DEP", "CREDIT") and PAYROLL.search(text)):
            return "income"
        return "transfer" if t == "XFER" else "refund" if t in ("POS", "DEBIT") else "other"
    if t == "XFER":
        return "transfer"
    if t in ("ATM", "CASH"):
        return "withdrawal"
    if CARD_PAYMENT.search(text):
        return "card_payment"
    if t in ("DEBIT", "DIRECTDEBIT", "POS", "CHECK", "PAYMENT", "REPEATPMT"):
        return "purchase"
    return "other"


def _payee(name: str) -> str:
    """The counterparty without trailing reference numbers ("ATM WITHDRAWAL 0231")."""
    return re.sub(r"(\s+#?\d[\d\s/-]*)+$", "", " ".join(name.split()))


def _transaction(elem: ET.Element, account: str, currency: str, statement: Statement,
                 file: str, n: int) -> Transaction | Problem:
    fitid = (elem.findtext("FITID") or "").strip()
    where = f"STMTTRN {fitid}" if fitid else f"STMTTRN #{n}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ofxtools warns on NAME > 32 characters
            model = Aggregate.from_etree(elem)
    except Exception as err:  # one transaction's failure in a third-party validator costs it alone
        return Problem(file=file, location=where, reason=f"invalid STMTTRN: {err}")
    raw = (elem.findtext("DTPOSTED") or "").strip()
    user = (elem.findtext("DTUSER") or "").strip()
    name = str(getattr(model, "name", None) or getattr(getattr(model, "payee", None), "name",
                                                       None) or "")
    memo = str(getattr(model, "memo", None) or "")
    description = " ".join(dict.fromkeys(x for x in (name, memo) if x))
    amount = Decimal(getattr(model, "trnamt"))  # noqa: B009  ofxtools' attributes are Any
    trntype = str(getattr(model, "trntype"))  # noqa: B009
    cursym = elem.findtext("CURRENCY/CURSYM")
    return Transaction(
        account=account, posted=f"{raw[:4]}-{raw[4:6]}-{raw[6:8]}",
        occurred=f"{user[:4]}-{user[4:6]}-{user[6:8]}" if user else "",
        amount=str(amount), currency=(cursym or currency).strip().upper(),
        description=description, payee=_payee(name),
        kind=ofx_kind(trntype, amount, description, statement), bank_type=trntype,
        fitid=fitid, source=Source(file=file, location=where, kind=statement))


def parse_ofx(path: Path) -> Iterator[Transaction | Problem]:
    """Every STMTTRN of every bank, card and brokerage-cash statement in an OFX/QFX file."""
    text, problem = decode(path.read_bytes(), path.name)
    start = text.upper().find("<OFX>")
    if start < 0:
        raise SourceError(f"{path.name} has no <OFX> element: not an OFX or QFX statement.")
    if problem:
        yield problem
    markup = text[start:]
    try:
        root = _tree(markup)
    except Exception as err:  # ofxtools raises ParseError, AssertionError or IndexError
        yield Problem(file=path.name, location="file", reason=f"OFX markup does not parse "
                      f"({err}); kept the transactions that parse on their own")
        yield from _salvage(markup, path.name, text[:start].count("\n"))
        return
    n = 0
    for stmt in root.iter():
        if stmt.tag not in _STATEMENTS:
            continue
        account_path, trn_path, statement = _STATEMENTS[stmt.tag]
        account = (stmt.findtext(account_path) or "").strip()
        currency = (stmt.findtext("CURDEF") or "").strip()
        for elem in stmt.iterfind(trn_path):
            n += 1
            yield _transaction(elem, account, currency, statement, path.name, n)
    if not markup.rstrip().upper().endswith("</OFX>"):
        line = text.count("\n") + 1
        yield Problem(file=path.name, location=f"line {line}",
                      reason="the file ends before </OFX>: it was cut short")


def _salvage(markup: str, file: str, offset: int) -> Iterator[Transaction | Problem]:
    """Transactions from a file whose markup as a whole does not parse."""
    account, currency, n, covered = "", "", 0, []
    statement: Statement = "bank"
    stmt_kind: dict[str, Statement] = {k: v[2] for k, v in _STATEMENTS.items()}
    for match in _SALVAGE.finditer(markup):
        if match["stmt"]:
            statement = stmt_kind[match["stmt"].upper()]
        elif match["cur"] is not None:
            currency = match["cur"].strip()
        elif match["acct"] is not None:
            account = match["acct"].strip()
        else:
            n += 1
            covered.append(match.start())
            try:
                elem = _tree(f"<STMTTRN>{match['trn']}</STMTTRN>")
            except Exception as err:  # same as parse_ofx: this block alone is lost
                line = offset + markup.count("\n", 0, match.start()) + 1
                yield Problem(file=file, location=f"line {line}",
                              reason=f"unreadable STMTTRN: {err}")
                continue
            yield _transaction(elem, account, currency, statement, file, n)
    for opened in re.finditer(r"<STMTTRN>", markup, re.IGNORECASE):
        if opened.start() not in covered:
            line = offset + markup.count("\n", 0, opened.start()) + 1
            yield Problem(file=file, location=f"line {line}",
                          reason="STMTTRN without its closing tag (the file may be cut short)")


__all__ = ["decode", "ofx_kind", "parse_ofx"]
