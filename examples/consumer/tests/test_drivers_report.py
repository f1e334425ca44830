from keyspace import Keyspace
from keyspace.testing import ApiClient, Factory, Member

from drivers_report import optimized_drivers


async def test_a_member_sees_and_changes_its_own_drivers_only(
    ks: Keyspace, factory: Factory, api: ApiClient, member: Member
) -> None:
    mine = await factory.create("drivers", user_id=member.id, status="optimized")
    theirs = await factory.create("drivers", status="optimized")  # another user's
    assert await optimized_drivers(ks, member.id) == [mine.doc["driver_id"]]
    refused = await api.delete(f"/api/drivers/{theirs.doc['driver_id']}", headers=member.headers)
    assert refused.status == 403
