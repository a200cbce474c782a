"""The GraphQL API: a graphene schema derived from the model, executed with per-shard batching.

A request flows through the modules of this package in one direction:

- :mod:`~efs_sqlite.graphql.objects`, :mod:`~efs_sqlite.graphql.limits`,
  :mod:`~efs_sqlite.graphql.paging`: the Relay ``Node`` interface and the objects resolvers
  return; the bounds on a request and the measure of a document; connection paging arithmetic.
- :mod:`~efs_sqlite.graphql.schema`: :func:`build_schema` derives the graphene schema (object
  types, connections, inputs, mutations) from a :class:`~efs_sqlite.model.Model`.
- :mod:`~efs_sqlite.graphql.plans`: the look-ahead of a document, worked out once per operation
  and lookahead variables; :mod:`~efs_sqlite.graphql.documents`: the cache of parsed, measured
  and validated documents, which keeps their plans.
- :mod:`~efs_sqlite.graphql.prefetch`: the caches of one request, read level by level, one read
  per shard per level, in parallel and locked ahead on a network file system.
- :mod:`~efs_sqlite.graphql.codegen`, :mod:`~efs_sqlite.graphql.compiled`: queries executed
  compiled per plan, falling back to graphql-core's executor (the reference it is tested
  against) on any error or abstract type.
- :mod:`~efs_sqlite.graphql.api`: :class:`GraphQLAPI`, the facade.

>>> import tempfile
>>> from efs_sqlite.store import ShardStore
>>> api = GraphQLAPI(ShardStore(tempfile.mkdtemp()))
>>> created = api.execute('mutation { createParty(input: {partyIdentifier: 7, '
...                       'timestamp: "2024-05-01T12:00:00Z"}) { id timestamp } }')
>>> created["data"]["createParty"]["timestamp"]
'2024-05-01T12:00:00+00:00'
>>> pid = created["data"]["createParty"]["id"]
>>> api.execute('query($id: ID!) { party(id: $id) { claims { id } claimsConnection { totalCount } } }',
...             {"id": pid})
{'data': {'party': {'claims': [], 'claimsConnection': {'totalCount': 0}}}}
"""

from efs_sqlite.graphql.api import GraphQLAPI
from efs_sqlite.graphql.limits import Limits, measure
from efs_sqlite.graphql.schema import build_schema, schema_sdl

__all__ = [
    "GraphQLAPI",
    "Limits",
    "build_schema",
    "measure",
    "schema_sdl",
]
