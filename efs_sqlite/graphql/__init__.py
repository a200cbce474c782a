"""The GraphQL API (the module, moved into a package of its own to be split up)."""

from efs_sqlite.graphql.prefetch import GraphQLAPI, Limits, build_schema, measure, schema_sdl

__all__ = ["GraphQLAPI", "Limits", "build_schema", "measure", "schema_sdl"]
