from bench import availability, bookings, calendars

availability.main()
print()
calendars.main()
print()
bookings.main()
