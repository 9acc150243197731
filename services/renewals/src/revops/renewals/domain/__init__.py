"""The pure renewals and forecast rules: plain data in, decisions out.

Nothing here reads a clock, a database or Kafka; every time is a parameter, so the
consumer can replay history and get the same answers.
"""
