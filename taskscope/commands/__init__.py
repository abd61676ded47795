"""The `taskscope` terminal commands, one module each, sharing `taskscope.commands.support`
(database and run selection, exit codes, progress on stderr).

A command module exposes ``register(commands)``: it adds its subparser to the
``argparse`` sub-parsers object and sets ``handler`` (a function of the parsed namespace
returning an exit code). `taskscope.cli` lists the modules to register.
"""
