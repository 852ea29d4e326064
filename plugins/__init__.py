"""Built-in rules (scoring, tiering, incentives...), each a plugin like a third party's."""
