"""Stats: the bounded read models behind the dashboard and the consumer that maintains them."""
