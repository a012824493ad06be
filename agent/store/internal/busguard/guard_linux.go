package busguard

func init() { guard() }
