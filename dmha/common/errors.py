"""Errors a user can cause (bad path, bad audio, bad config key, missing embedding).

CLIs catch :class:`UserError` and print its message as one line, without a traceback: the message
must name the file/utterance and say what to do. Programming errors stay ordinary exceptions.
"""


class UserError(Exception):
    """A problem with the user's input or environment, reported as one clear line."""
