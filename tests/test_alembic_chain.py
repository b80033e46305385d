"""The chain as Alembic sees it (pytest-alembic's built-in tests run too: see conftest.py)."""

from alembic.script import ScriptDirectory

from kanban_migrate import head, revisions
from kanban_migrate.upgrading.chain import make_config


def test_the_revision_list_is_the_chain_of_revision_files():
    script = ScriptDirectory.from_config(make_config())
    chain = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert chain == list(revisions.REVISIONS)
    assert script.get_current_head() == revisions.HEAD


def test_pending_after():
    assert revisions.pending_after(None) == list(revisions.REVISIONS)
    assert revisions.pending_after("v5") == ["v6", "v7"]
    assert revisions.pending_after(revisions.HEAD) == []


def test_every_head_column_and_index_belongs_to_a_revision():
    for table in head.metadata.tables.values():
        for col in table.columns:
            assert col.info["since"] in head.REVISIONS, (table.name, col.name)
            assert head.at(head.HEAD, col)
        for ix in table.indexes:
            assert ix.info["since"] in head.REVISIONS, ix.name
    added = sum(len(head.columns_added_by(t, r)) for t in head.metadata.tables for r in head.REVISIONS)
    assert added == sum(len(t.columns) for t in head.metadata.tables.values())
