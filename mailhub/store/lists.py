SCHEMA: list[str] = []
