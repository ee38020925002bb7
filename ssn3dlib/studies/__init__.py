"""Library side of the studies: the code a notebook calls, kept testable outside notebooks."""
