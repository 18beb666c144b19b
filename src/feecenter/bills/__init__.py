"""Bills over the fees settlement and orders record (BIL-1..8): read-only views."""
