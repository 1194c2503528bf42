"""The BGP session with one switch as topfib sees it: its state, why it is down, whether the
switch's table is complete, and which of its routes point back at topfib."""
