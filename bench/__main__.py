from bench import availability, bookings

availability.main()
print()
bookings.main()
