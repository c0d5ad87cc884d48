"""A relationship's target name resolves as Python would in its module first."""

from __future__ import annotations

from core_fixtures import User

import conduit_models
from data_bridge_core import Column, Table, relationship


class Badge(Table):
    id: int = Column(primary_key=True)
    user_id: int = Column(foreign_key="users.id")
    user: User = relationship()

    class Settings:
        table_name = "badges"


def test_an_imported_model_wins_over_a_model_of_that_name_declared_elsewhere_later() -> None:
    # conduit_models declares another User (table "users" too) after core_fixtures'
    assert conduit_models.User is not User
    assert Badge.user.target is User
