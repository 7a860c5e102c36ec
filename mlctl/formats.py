"""The -o formats every command accepts (kept apart so the root command imports nothing else)."""

OUTPUT_FORMATS = ("table", "wide", "json", "yaml", "name")
