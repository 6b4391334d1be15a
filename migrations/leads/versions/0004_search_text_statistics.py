"""search_text statistics: a histogram fine enough for the planner to see how common a search term is

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 07:00:00

PostgreSQL estimates `search_text LIKE '%term%'` by matching the pattern against the column's histogram. With
the default 100 buckets a term on 2% of the leads usually hits none, the estimate falls to its floor (~100
rows), and the planner sorts every match of the trigram index (17,000 rows for a common surname in a million:
60 ms) instead of walking the primary key newest-first and stopping at the 50th match (under 1 ms). A
1,000-bucket histogram tells common terms from rare ones; rare terms keep the trigram index.
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.execute("ALTER TABLE leads.leads ALTER COLUMN search_text SET STATISTICS 1000")


def downgrade() -> None:
    op.execute("ALTER TABLE leads.leads ALTER COLUMN search_text SET STATISTICS -1")
