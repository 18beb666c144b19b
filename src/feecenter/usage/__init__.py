"""Usage intake: metering records of postpaid resources, deduplicated by event ID,
validated one by one (a bad record is rejected with its reason, the good ones
in the same batch are kept), stored for rating and settlement."""
