"""Evidence refs: what opsledger writes into its reports resolves through here."""
