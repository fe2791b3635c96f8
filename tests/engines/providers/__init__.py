"""Provider engines tested against local fake servers that speak each provider's wire format."""
