"""Full-text search over transcripts: one small query language, two database engines.

A search is words (all must occur), ``"quoted phrases"`` and ``-excluded`` words or phrases,
as in most search boxes. :func:`parse_query` reads it into a :class:`SearchQuery`, which each
engine renders in its own syntax:

* SQLite: an FTS5 ``MATCH`` expression with every term quoted, so that no user input is ever
  read as FTS5 syntax (``NEAR``, ``*``, column filters, parentheses…);
* PostgreSQL: the input of ``websearch_to_tsquery``, which accepts the same three forms and
  never raises on odd input.

The index behind each (migration 0002) stems English words on both engines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, Integer, TextClause, bindparam, column, table, text

from oversight.errors import SpecError
from oversight.store import schema

#: Must stay identical to the expression indexed by migration 0002, or PostgreSQL scans.
PG_VECTOR = "jsonb_to_tsvector('english'::regconfig, jsonb_path_query_array(transcripts.messages, '$[*].content'::jsonpath), '[\"string\"]'::jsonb)"
MAX_QUERY = 500
_TOKEN = re.compile(r'(-?)"([^"]*)"|(-?)(\S+)')


@dataclass(frozen=True)
class SearchQuery:
    """Terms that must occur, and terms that must not; each term is a word or a phrase."""

    include: tuple[str, ...]
    exclude: tuple[str, ...]

    def fts5(self) -> str:
        """The FTS5 MATCH expression: ``"a" "b c" NOT "d"`` (quotes doubled inside terms)."""
        positive = " ".join(_quote(t) for t in self.include)
        if not self.exclude:
            return positive
        return f"({positive})" + "".join(f" NOT {_quote(t)}" for t in self.exclude)

    def websearch(self) -> str:
        """The input of PostgreSQL's ``websearch_to_tsquery``."""
        parts = [_phrase(t) for t in self.include] + ["-" + _phrase(t) for t in self.exclude]
        return " ".join(parts)


def parse_query(raw: str) -> SearchQuery:
    """Read a search box. SpecError when nothing searchable is left (only exclusions, or only
    punctuation), since neither engine can list "everything except"."""
    if len(raw) > MAX_QUERY:
        raise SpecError(f"a search is at most {MAX_QUERY} characters")
    include: list[str] = []
    exclude: list[str] = []
    for m in _TOKEN.finditer(raw):
        negated = bool(m.group(1) or m.group(3))
        term = m.group(2) if m.group(2) is not None else m.group(4)
        term = " ".join(_words(term))
        if term:
            (exclude if negated else include).append(term)
    if not include:
        raise SpecError("a search needs at least one word to look for (letters or digits)")
    return SearchQuery(tuple(dict.fromkeys(include)), tuple(dict.fromkeys(exclude)))


def _words(term: str) -> list[str]:
    # Both engines' tokenizers split on punctuation anyway; doing it here keeps quotes, minus
    # signs and operators out of the rendered query.
    return re.findall(r"\w+", term)


def _phrase(term: str) -> str:
    """Quoted when it is several words, or the word ``or`` (websearch's disjunction): a user's
    "or" is a word on both engines."""
    return f'"{term}"' if " " in term or term.lower() == "or" else term


def _quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


#: The FTS5 table as SQLAlchemy sees it: its rowid is the transcript id.
FTS = table(schema.SEARCH_TABLE, column("rowid", Integer))


def sqlite_match(query: SearchQuery) -> TextClause:
    """``transcripts_fts MATCH :q``, for a statement that selects from :data:`FTS`."""
    return text(f"{schema.SEARCH_TABLE} MATCH :fts_query").bindparams(bindparam("fts_query", query.fts5()))


def sqlite_match_ids(query: SearchQuery) -> TextClause:
    """``SELECT rowid FROM transcripts_fts WHERE transcripts_fts MATCH :q`` (SQLite)."""
    return text(f"SELECT rowid FROM {schema.SEARCH_TABLE} WHERE {schema.SEARCH_TABLE} MATCH :fts_query").bindparams(
        bindparam("fts_query", query.fts5())
    )


def sqlite_matches_at_least(conn: Connection, query: SearchQuery, count: int) -> bool:
    """Whether the search matches ``count`` transcripts or more (reads at most that many ids)."""
    inner = f"SELECT rowid FROM {schema.SEARCH_TABLE} WHERE {schema.SEARCH_TABLE} MATCH :q LIMIT :cap"
    found = conn.execute(text(f"SELECT count(*) FROM ({inner})"), {"q": query.fts5(), "cap": count}).scalar_one()
    return int(found) >= count


def pg_matches(query: SearchQuery) -> TextClause:
    """The PostgreSQL predicate on ``transcripts`` (not aliased) that the GIN index serves."""
    return text(f"{PG_VECTOR} @@ websearch_to_tsquery('english'::regconfig, :pg_query)").bindparams(
        bindparam("pg_query", query.websearch())
    )
