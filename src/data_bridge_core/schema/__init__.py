"""The model layer: columns, types, expressions and the `Table` base class."""
