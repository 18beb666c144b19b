"""Account cancellation (注销, ACC-4/5): what blocks it, the cancellation itself and the
cancellation-help service request kind. Owns no table (the account's state is
``accounts``')."""
