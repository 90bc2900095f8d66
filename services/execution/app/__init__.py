"""Execution's use cases, each in its own module, talking to the outside through `ports`.

`entry` (SubmitOrder), `group_entry` (brackets, OCO, OTO, session terms), `amend`
(cancel, replace, close position), `journal` (engine events into transactions),
`feed` (ticks, session open/close, restarts), `portfolio` (account and position
reads), `subscriptions` (order update streams); `broker` wires them together.
"""
