"""Per-request loaders for the roster: each distinct member or team a request names is read once.

The roster has no `?ids=` lookup (a workspace has tens of members, not millions of leads), so these are
one-by-one loaders (`gateway.loaders.one_by_one`).
"""

from __future__ import annotations

import uuid

from strawberry.dataloader import DataLoader

from gateway.clients.roster import MemberRecord, TeamRecord

MemberLoader = DataLoader[uuid.UUID, MemberRecord | None]
TeamLoader = DataLoader[uuid.UUID, TeamRecord | None]
