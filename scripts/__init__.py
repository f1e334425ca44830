"""Operations tooling (command-line interface) over the keyspace."""
