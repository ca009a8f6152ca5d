//! Variable difficulty per connection toward a target share rate.
