"""Customer accounts: UINs, real-name state, sub-users and roles, storefronts,
account states, and the permission rules (ACC-1..4)."""
